// 3x3, stride 1, pad 1 convolutions by Winograd F(m x m, 3x3), m = 2 or 4: forward, input gradient and weight
// gradient, each as (m + 2)^2 GEMMs in the transformed domain. F(2x2) does 2.25x fewer multiplies than im2col +
// GEMM, F(4x4) 4x fewer (on sizes that are multiples of 4), and the transforms read and write ~4x (F(2x2)) or
// ~2.25x (F(4x4)) the activation instead of the 9x an im2col matrix takes. The bulk of the UNet's work is such
// convs at 32-128 channels, where this is what makes a training step faster than a direct convolution can be.
//
// A chunk of `samplesPerGemm` samples is transformed at a time, its tiles side by side as GEMM columns, so the
// transformed buffers stay in cache and each GEMM has enough columns (T = samples x tiles per sample).
// bf16 (ConvShape.precision): the convolution's operands - x, the weights and, in backward, dY - are rounded to bf16
// (one channel plane at a time into scratch, inside the transforms, so they read it from L1; rounding whole samples
// first added a pass through L2, 1.4% of a bf16 mnist step) and the transforms and products run in
// fp32 with OpenBLAS: the exact convolution of the rounded operands up to fp32 sums, as accurate as im2col's bf16.
// Native bf16 kernels (BF16Kernel.isNative) must also round the transformed tiles, which VDPBF16PS multiplies: one
// more rounding there, ~6x im2col's error with F(4x4) (MixedPrecisionTests, docs/bf16-kernels.md).
// Rounding: F(2x2)'s transforms only add and halve, so its results differ from a direct convolution by a few ulps
// of the largest partial sums (tested against the Double reference at 1e-5). F(4x4)'s output transform multiplies
// the rounded products by up to 64, so its error is ~6x larger (measured in WinogradF4Transforms.swift).

/// The tile transforms of one F(m x m, 3x3) variant, on one sample's planes (WinogradTransforms.swift and
/// WinogradF4Transforms.swift). Transformed tiles live in (E, rows, ld) buffers, E = (m + 2)^2, column = tile.
protocol WinogradTiles {
    /// m: the output tile's side; input tiles are m + 2 wide, m apart.
    static var tile: Int { get }
    /// Scratch rows (of geo.rowStride floats) the transforms need.
    static var scratchRows: Int { get }
    /// weight (Cout, Cin, 3, 3) -> u (E, Cout, Cin), or (E, Cin, Cout) with `transposed`, = G g G^T per filter.
    static func transformWeights(outChannels: Int, inChannels: Int, weight: UnsafePointer<Float>,
                                 u: UnsafeMutablePointer<Float>, transposed: Bool)
    /// Adjoint of transformWeights: dWeight (Cout, Cin, 3, 3) += G^T dU G, dU (E, Cout, Cin).
    static func addWeightGradient(outChannels: Int, inChannels: Int, dU: UnsafePointer<Float>,
                                  dWeight: UnsafeMutablePointer<Float>)
    /// x: one sample (C, H, W) -> v (E, C, ld) columns [col0, col0 + tiles), each channel plane read through
    /// `input` (as it is, or normalised and/or rounded to bf16 into its scratch first).
    static func transformInput(_ geo: WinogradGeometry, channels: Int, x: UnsafePointer<Float>,
                               v: UnsafeMutablePointer<Float>, ld: Int, col0: Int,
                               scratch: UnsafeMutablePointer<Float>, input: PlaneInput)
    /// m (E, C, ld) columns [col0, col0 + tiles) -> y: one sample (C, H, W) = A^T M A + bias + sampleBias.
    static func transformOutput(_ geo: WinogradGeometry, channels: Int, m: UnsafePointer<Float>, ld: Int, col0: Int,
                                bias: UnsafePointer<Float>?, sampleBias: UnsafePointer<Float>?,
                                y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>)
    /// Adjoint of transformOutput without bias: dY one sample (C, H, W) -> dM (E, C, ld), overwritten. With
    /// `rounding`, dY's planes are rounded to bf16 first, as in transformInput.
    static func transformOutputAdjoint(_ geo: WinogradGeometry, channels: Int, dY: UnsafePointer<Float>,
                                       dM: UnsafeMutablePointer<Float>, ld: Int, col0: Int,
                                       scratch: UnsafeMutablePointer<Float>, rounding: UnsafeMutablePointer<Float>?)
    /// Adjoint of transformInput: dV (E, C, ld) -> dX one sample (C, H, W) += (= with `overwrite`).
    static func transformInputAdjoint(_ geo: WinogradGeometry, channels: Int, dV: UnsafePointer<Float>, ld: Int,
                                      col0: Int, dX: UnsafeMutablePointer<Float>,
                                      scratch: UnsafeMutablePointer<Float>, overwrite: Bool)
}

extension WinogradTiles {
    /// E: elements of a transformed tile, one GEMM each.
    static var elements: Int { (tile + 2) * (tile + 2) }
}

public enum Winograd {
    /// Scratch floats for one call: U (E, Cout, Cin) (forward: U^T, (E, Cin, Cout)), dU (E, Cout, Cin),
    /// V (E, Cin, T), M (E, Cout, T), one V_e^T (T, Cin) for the weight gradient's products, the transforms'
    /// scratch rows and one prepared channel plane (H, W: normalised and/or rounded, PlaneInput); bf16 adds the
    /// rounded weights.
    static func workspaceCount(_ s: ConvShape) -> Int {
        func count<F: WinogradTiles>(_: F.Type) -> Int {
            let geo = WinogradGeometry(height: s.height, width: s.width, tile: F.tile)
            let ld = s.samplesPerGemm * geo.tiles + WinogradGeometry.columnSlack
            let rounded = s.height * s.width + (s.precision == .bf16 ? 9 * s.outChannels * s.inChannels : 0)
            return F.elements * (2 * s.outChannels * s.inChannels + (s.inChannels + s.outChannels) * ld)
                + s.inChannels * ld + F.scratchRows * geo.rowStride + rounded
        }
        return s.algorithm == .winograd4 ? count(WinogradF4.self) : count(WinogradF2.self)
    }

    /// The default chunk. Measured (`bench --convs`, mnist shapes, batch 64, 1 thread): the transformed buffers
    /// must stay in L2; bigger chunks only lose. F(2x2): at most ~64 tiles (one sample at 14x14 and up), e.g.
    /// 32->32 @28 forward 7.9 ms at 1 sample, 13.3 ms at 8; 128->64 @14: 12.2 ms at 1, 18.1 ms at 8.
    /// F(4x4): V and M at most ~1 MB (36 (Cin + Cout) T floats), the L2: forward + backward ms at 1 / 2 / 4 / 8
    /// samples, 32->32 @28: 19.9 / 18.8 / 19.0 / 20.0; 64->64 @28: 49.6 / 52.2 / 55.8 / 65.8 (96->32 alike).
    static func defaultSamplesPerGemm(_ s: ConvShape) -> Int {
        if s.algorithm == .winograd4 {
            let tiles = WinogradGeometry(height: s.height, width: s.width, tile: 4).tiles
            return max(1, 8192 / ((s.inChannels + s.outChannels) * tiles))
        }
        return max(1, 64 / WinogradGeometry(height: s.height, width: s.width, tile: 2).tiles)
    }

    /// Floats of U (E, Cout, Cin) for an algorithm's transformed weights.
    static func transformedWeightCount(_ a: ConvAlgorithm, _ cout: Int, _ cin: Int) -> Int {
        (a == .winograd4 ? WinogradF4.elements : WinogradF2.elements) * cout * cin
    }

    /// weight (Cout, Cin, 3, 3) -> u in the forward's layout, U^T (E, Cin, Cout), for conv `s` (a Winograd one);
    /// in bf16 the weights are rounded first, as `forward` rounds them.
    static func transformWeights(_ s: ConvShape, weight: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        if s.precision == .bf16 {
            let count = 9 * s.outChannels * s.inChannels
            let rounded = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { rounded.deallocate() }
            BF16Buffer.round(count: count, weight, into: rounded)
            var fp32 = s
            fp32.precision = .fp32
            transformWeights(fp32, weight: rounded, into: u)
            return
        }
        if s.algorithm == .winograd4 {
            WinogradF4.transformWeights(outChannels: s.outChannels, inChannels: s.inChannels, weight: weight, u: u,
                                        transposed: true)
        } else {
            WinogradF2.transformWeights(outChannels: s.outChannels, inChannels: s.inChannels, weight: weight, u: u,
                                        transposed: true)
        }
    }

    private struct Buffers {
        let u, dU, v, m, vT, scratch: UnsafeMutablePointer<Float>
        /// One prepared channel plane of x or dY (H, W), and (bf16) the rounded weights.
        let plane, weight: UnsafeMutablePointer<Float>
        init(_ s: ConvShape, _ geo: WinogradGeometry, elements: Int, scratchRows: Int,
             _ workspace: UnsafeMutablePointer<Float>) {
            let weights = elements * s.outChannels * s.inChannels
            let ld = s.samplesPerGemm * geo.tiles + WinogradGeometry.columnSlack
            u = workspace; dU = u + weights; v = dU + weights
            m = v + elements * s.inChannels * ld; vT = m + elements * s.outChannels * ld
            scratch = vT + s.inChannels * ld
            plane = scratch + scratchRows * geo.rowStride
            weight = plane + s.height * s.width
        }

        /// The operand as the transforms should read it: itself in fp32, else rounded to bf16 into `into`.
        static func operand(_ p: UnsafePointer<Float>, count: Int, bf16: Bool,
                            into: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
            guard bf16 else { return p }
            BF16Buffer.round(count: count, p, into: into)
            return UnsafePointer(into)
        }
    }

    /// x (N, Cin, H, W), weight (Cout, Cin, 3, 3), bias (Cout), sampleBias (N, Cout) or nil
    /// -> y (N, Cout, H, W) with samples yStride apart, overwritten. workspace: (s.workspaceCount). With
    /// `transformed`, U comes from (or goes into) that cache instead of being computed into the workspace. With
    /// `norm`, the conv's input is silu(groupnorm(x)), computed plane by plane as the transform reads x.
    static func forward(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>, sampleBias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                        yStride: Int, workspace: UnsafeMutablePointer<Float>, transformed: TransformedWeights? = nil,
                        norm: NormalizedInput? = nil) {
        let u = transformed?.winograd(s, weight: weight)
        if s.algorithm == .winograd4 {
            forward(WinogradF4.self, s, x: x, weight: weight, bias: bias, sampleBias: sampleBias, y: y,
                    yStride: yStride, workspace: workspace, u: u, norm: norm)
        } else {
            forward(WinogradF2.self, s, x: x, weight: weight, bias: bias, sampleBias: sampleBias, y: y,
                    yStride: yStride, workspace: workspace, u: u, norm: norm)
        }
    }

    /// dY (N, Cout, H, W); adds into dX (N, Cin, H, W) (overwrites it with `overwriteInput`) and dWeight
    /// (Cout, Cin, 3, 3) when non-nil (the bias gradient is Conv2D's). x is only read when dWeight != nil, weight
    /// only when dX != nil. With `norm`, the conv's input was silu(groupnorm(x)) (as in `forward`); dX is still
    /// the gradient at the conv's input, the normalised one.
    /// workspace: (s.workspaceCount).
    static func backward(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                         dWeight: UnsafeMutablePointer<Float>?, workspace: UnsafeMutablePointer<Float>,
                         overwriteInput: Bool = false, norm: NormalizedInput? = nil) {
        if dX == nil && dWeight == nil { return }
        if s.algorithm == .winograd4 {
            backward(WinogradF4.self, s, x: x, weight: weight, dY: dY, dX: dX, dWeight: dWeight, workspace: workspace,
                     overwriteInput: overwriteInput, norm: norm)
        } else {
            backward(WinogradF2.self, s, x: x, weight: weight, dY: dY, dX: dX, dWeight: dWeight, workspace: workspace,
                     overwriteInput: overwriteInput, norm: norm)
        }
    }

    private static func forward<F: WinogradTiles>(_: F.Type, _ s: ConvShape, x: UnsafePointer<Float>,
                                                  weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                                  sampleBias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                                                  yStride: Int, workspace: UnsafeMutablePointer<Float>,
                                                  u cached: UnsafePointer<Float>?, norm: NormalizedInput?) {
        let geo = WinogradGeometry(height: s.height, width: s.width, tile: F.tile)
        let buf = Buffers(s, geo, elements: F.elements, scratchRows: F.scratchRows, workspace)
        let cin = s.inChannels, cout = s.outChannels, tiles = geo.tiles
        let inSize = cin * s.height * s.width, outSize = yStride
        let bf16 = s.precision == .bf16, native = bf16 && BF16Kernel.isNative
        @inline(__always) func input(_ n: Int) -> PlaneInput {
            PlaneInput(scratch: buf.plane, norm: norm, sample: n, round: bf16)
        }
        // U is kept transposed, (E, Cin, Cout), so each product M_e = U_e V_e runs as op(A) = A^T: at these shapes
        // (n = 49 or 98 tiles) OpenBLAS's kernel for that case is 7-21% faster than its NN one (same bits as the
        // TN products of dX; measured in BENCHMARKS.md).
        if cached == nil {
            let w = Buffers.operand(weight, count: 9 * cout * cin, bf16: bf16, into: buf.weight)
            F.transformWeights(outChannels: cout, inChannels: cin, weight: w, u: buf.u, transposed: true)
        }
        let u = cached ?? UnsafePointer(buf.u)
        // Native bf16 kernels multiply (rounded) transformed tiles: U packed once per call.
        let packedU = native ? MixedWeights(count: F.elements, transA: true, m: cout, k: cin, a: u,
                                            stride: cout * cin, maxN: s.samplesPerGemm * tiles) : nil
        var n0 = 0
        while n0 < s.batch {
            let b = min(s.samplesPerGemm, s.batch - n0), t = b * tiles, ld = t + WinogradGeometry.columnSlack
            for j in 0..<b {
                F.transformInput(geo, channels: cin, x: x + (n0 + j) * inSize, v: buf.v, ld: ld, col0: j * tiles,
                                 scratch: buf.scratch, input: input(n0 + j))
            }
            for e in 0..<F.elements {
                if let packedU {
                    packedU.multiply(e, n: t, b: buf.v + e * cin * ld, ldb: ld, beta: 0, c: buf.m + e * cout * ld,
                                     ldc: ld)
                    continue
                }
                Gemm.sgemm(transA: true, transB: false, m: cout, n: t, k: cin, alpha: 1,
                           a: u + e * cout * cin, lda: cout, b: buf.v + e * cin * ld, ldb: ld,
                           beta: 0, c: buf.m + e * cout * ld, ldc: ld)
            }
            for j in 0..<b {
                F.transformOutput(geo, channels: cout, m: buf.m, ld: ld, col0: j * tiles, bias: bias,
                                  sampleBias: sampleBias.map { $0 + (n0 + j) * cout }, y: y + (n0 + j) * outSize,
                                  scratch: buf.scratch)
            }
            n0 += b
        }
    }

    private static func backward<F: WinogradTiles>(_: F.Type, _ s: ConvShape, x: UnsafePointer<Float>,
                                                   weight: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                                   dX: UnsafeMutablePointer<Float>?,
                                                   dWeight: UnsafeMutablePointer<Float>?,
                                                   workspace: UnsafeMutablePointer<Float>, overwriteInput: Bool,
                                                   norm: NormalizedInput?) {
        let geo = WinogradGeometry(height: s.height, width: s.width, tile: F.tile)
        let buf = Buffers(s, geo, elements: F.elements, scratchRows: F.scratchRows, workspace)
        let cin = s.inChannels, cout = s.outChannels, tiles = geo.tiles, elements = F.elements
        let inSize = cin * s.height * s.width, outSize = cout * s.height * s.width
        let bf16 = s.precision == .bf16, native = bf16 && BF16Kernel.isNative
        let plane = bf16 ? buf.plane : nil
        @inline(__always) func input(_ n: Int) -> PlaneInput {
            PlaneInput(scratch: buf.plane, norm: norm, sample: n, round: bf16)
        }
        if dX != nil {
            let w = Buffers.operand(weight, count: 9 * cout * cin, bf16: bf16, into: buf.weight)
            F.transformWeights(outChannels: cout, inChannels: cin, weight: w, u: buf.u, transposed: false)
        }
        if dWeight != nil { buf.dU.update(repeating: 0, count: elements * cout * cin) }
        // dV = U^T dM: U^T packed once per call with native bf16 kernels
        let packedUT = dX == nil || !native ? nil : MixedWeights(count: elements, transA: true, m: cin, k: cout,
                                                                  a: buf.u, stride: cout * cin,
                                                                  maxN: s.samplesPerGemm * tiles)
        var n0 = 0
        while n0 < s.batch {
            let b = min(s.samplesPerGemm, s.batch - n0), t = b * tiles, ld = t + WinogradGeometry.columnSlack
            for j in 0..<b {
                F.transformOutputAdjoint(geo, channels: cout, dY: dY + (n0 + j) * outSize, dM: buf.m, ld: ld,
                                         col0: j * tiles, scratch: buf.scratch, rounding: plane)
            }
            if dWeight != nil {
                // dU (Cout, Cin) += dM (Cout, T) V^T (T, Cin), V recomputed from x (cheaper than keeping it).
                for j in 0..<b {
                    F.transformInput(geo, channels: cin, x: x + (n0 + j) * inSize, v: buf.v, ld: ld,
                                     col0: j * tiles, scratch: buf.scratch, input: input(n0 + j))
                }
                for e in 0..<elements {
                    if native {
                        Gemm.sbgemm(transA: false, transB: true, m: cout, n: cin, k: t, alpha: 1,
                                    a: buf.m + e * cout * ld, lda: ld, b: buf.v + e * cin * ld, ldb: ld, beta: 1,
                                    c: buf.dU + e * cout * cin, ldc: cin)
                        continue
                    }
                    // V_e transposed, then OpenBLAS's NN kernel: faster than its NT one at these shapes
                    Gemm.sgemmTransposingB(m: cout, n: cin, k: t, alpha: 1, a: buf.m + e * cout * ld, lda: ld,
                                           b: buf.v + e * cin * ld, ldb: ld, beta: 1, c: buf.dU + e * cout * cin,
                                           ldc: cin, scratch: buf.vT)
                }
            }
            if let dX {
                // dV (Cin, T) = U^T (Cin, Cout) dM (Cout, T), into V's space (its last reader is done).
                for e in 0..<elements {
                    if let packedUT {
                        packedUT.multiply(e, n: t, b: buf.m + e * cout * ld, ldb: ld, beta: 0,
                                          c: buf.v + e * cin * ld, ldc: ld)
                        continue
                    }
                    Gemm.sgemm(transA: true, transB: false, m: cin, n: t, k: cout, alpha: 1,
                               a: buf.u + e * cout * cin, lda: cin, b: buf.m + e * cout * ld, ldb: ld,
                               beta: 0, c: buf.v + e * cin * ld, ldc: ld)
                }
                for j in 0..<b {
                    F.transformInputAdjoint(geo, channels: cin, dV: buf.v, ld: ld, col0: j * tiles,
                                            dX: dX + (n0 + j) * inSize, scratch: buf.scratch,
                                            overwrite: overwriteInput)
                }
            }
            n0 += b
        }
        if let dWeight { F.addWeightGradient(outChannels: cout, inChannels: cin, dU: buf.dU, dWeight: dWeight) }
    }
}
