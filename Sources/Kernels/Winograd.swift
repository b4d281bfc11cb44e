// 3x3, stride 1, pad 1 convolutions by Winograd F(2x2, 3x3): forward, input gradient and weight gradient, each as
// 16 GEMMs in the transformed domain. They do 2.25x fewer multiplies than im2col + GEMM, and the transforms read
// and write ~4x the activation instead of the 9x an im2col matrix takes. The bulk of the UNet's work is such convs
// at 32-128 channels, where this is what makes a training step faster than a direct convolution can be.
//
// A chunk of `samplesPerGemm` samples is transformed at a time, its tiles side by side as GEMM columns, so the
// transformed buffers stay in cache and each GEMM has enough columns (T = samples x tiles per sample).
// Rounding: the transforms only add and halve, so results differ from a direct convolution by a few ulps of
// the largest partial sums (tested against the Double reference at 1e-5).

public enum Winograd {
    /// Scratch floats for one call: U (16, Cout, Cin), dU (16, Cout, Cin), V (16, Cin, T), M (16, Cout, T) and the
    /// transforms' padded plane and rows.
    static func workspaceCount(_ s: ConvShape) -> Int {
        let geo = WinogradGeometry(height: s.height, width: s.width)
        let ld = s.samplesPerGemm * geo.tiles + WinogradGeometry.columnSlack
        return 32 * s.outChannels * s.inChannels + 16 * (s.inChannels + s.outChannels) * ld + geo.scratchCount
    }

    /// The default chunk: at most ~64 tiles (one sample at 14x14 and up). Measured (`bench --convs`, mnist shapes,
    /// batch 64, 1 thread): the transformed buffers must stay in L2; bigger chunks only lose, e.g. 32->32 @28
    /// forward 7.9 ms at 1 sample, 13.3 ms at 8; 128->64 @14: 12.2 ms at 1, 18.1 ms at 8.
    static func defaultSamplesPerGemm(height: Int, width: Int) -> Int {
        max(1, 64 / WinogradGeometry(height: height, width: width).tiles)
    }

    private struct Buffers {
        let u, dU, v, m, scratch: UnsafeMutablePointer<Float>
        init(_ s: ConvShape, _ geo: WinogradGeometry, _ workspace: UnsafeMutablePointer<Float>) {
            let weights = 16 * s.outChannels * s.inChannels
            let ld = s.samplesPerGemm * geo.tiles + WinogradGeometry.columnSlack
            u = workspace; dU = u + weights; v = dU + weights
            m = v + 16 * s.inChannels * ld; scratch = m + 16 * s.outChannels * ld
        }
    }

    /// x (N, Cin, H, W), weight (Cout, Cin, 3, 3), bias (Cout), sampleBias (N, Cout) or nil
    /// -> y (N, Cout, H, W) with samples yStride apart, overwritten. workspace: (s.workspaceCount).
    static func forward(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>, sampleBias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                        yStride: Int, workspace: UnsafeMutablePointer<Float>) {
        let geo = WinogradGeometry(height: s.height, width: s.width), buf = Buffers(s, geo, workspace)
        let cin = s.inChannels, cout = s.outChannels, tiles = geo.tiles
        let inSize = cin * s.height * s.width, outSize = yStride
        transformWeights(outChannels: cout, inChannels: cin, weight: weight, u: buf.u)
        var n0 = 0
        while n0 < s.batch {
            let b = min(s.samplesPerGemm, s.batch - n0), t = b * tiles, ld = t + WinogradGeometry.columnSlack
            for j in 0..<b {
                transformInput(geo, channels: cin, x: x + (n0 + j) * inSize, v: buf.v, ld: ld, col0: j * tiles,
                               scratch: buf.scratch)
            }
            for e in 0..<16 {
                Gemm.sgemm(transA: false, transB: false, m: cout, n: t, k: cin, alpha: 1,
                           a: buf.u + e * cout * cin, lda: cin, b: buf.v + e * cin * ld, ldb: ld,
                           beta: 0, c: buf.m + e * cout * ld, ldc: ld)
            }
            for j in 0..<b {
                transformOutput(geo, channels: cout, m: buf.m, ld: ld, col0: j * tiles, bias: bias,
                                sampleBias: sampleBias.map { $0 + (n0 + j) * cout }, y: y + (n0 + j) * outSize,
                                scratch: buf.scratch)
            }
            n0 += b
        }
    }

    /// dY (N, Cout, H, W); adds into dX (N, Cin, H, W) (overwrites it with `overwriteInput`) and dWeight
    /// (Cout, Cin, 3, 3) when non-nil (the bias gradient is Conv2D's). x is only read when dWeight != nil, weight
    /// only when dX != nil.
    /// workspace: (s.workspaceCount).
    static func backward(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                         dWeight: UnsafeMutablePointer<Float>?, workspace: UnsafeMutablePointer<Float>,
                         overwriteInput: Bool = false) {
        if dX == nil && dWeight == nil { return }
        let geo = WinogradGeometry(height: s.height, width: s.width), buf = Buffers(s, geo, workspace)
        let cin = s.inChannels, cout = s.outChannels, tiles = geo.tiles
        let inSize = cin * s.height * s.width, outSize = cout * s.height * s.width
        if dX != nil { transformWeights(outChannels: cout, inChannels: cin, weight: weight, u: buf.u) }
        if dWeight != nil { buf.dU.update(repeating: 0, count: 16 * cout * cin) }
        var n0 = 0
        while n0 < s.batch {
            let b = min(s.samplesPerGemm, s.batch - n0), t = b * tiles, ld = t + WinogradGeometry.columnSlack
            for j in 0..<b {
                transformOutputAdjoint(geo, channels: cout, dY: dY + (n0 + j) * outSize, dM: buf.m, ld: ld,
                                       col0: j * tiles, scratch: buf.scratch)
            }
            if dWeight != nil {
                // dU (Cout, Cin) += dM (Cout, T) V^T (T, Cin), V recomputed from x (cheaper than keeping it).
                for j in 0..<b {
                    transformInput(geo, channels: cin, x: x + (n0 + j) * inSize, v: buf.v, ld: ld, col0: j * tiles,
                                   scratch: buf.scratch)
                }
                for e in 0..<16 {
                    Gemm.sgemm(transA: false, transB: true, m: cout, n: cin, k: t, alpha: 1,
                               a: buf.m + e * cout * ld, lda: ld, b: buf.v + e * cin * ld, ldb: ld,
                               beta: 1, c: buf.dU + e * cout * cin, ldc: cin)
                }
            }
            if let dX {
                // dV (Cin, T) = U^T (Cin, Cout) dM (Cout, T), into V's space (its last reader is done).
                for e in 0..<16 {
                    Gemm.sgemm(transA: true, transB: false, m: cin, n: t, k: cout, alpha: 1,
                               a: buf.u + e * cout * cin, lda: cin, b: buf.m + e * cout * ld, ldb: ld,
                               beta: 0, c: buf.v + e * cin * ld, ldc: ld)
                }
                for j in 0..<b {
                    transformInputAdjoint(geo, channels: cin, dV: buf.v, ld: ld, col0: j * tiles,
                                          dX: dX + (n0 + j) * inSize, scratch: buf.scratch, overwrite: overwriteInput)
                }
            }
            n0 += b
        }
        if let dWeight { addWeightGradient(outChannels: cout, inChannels: cin, dU: buf.dU, dWeight: dWeight) }
    }
}
