// 2-D convolution (NCHW, weight (Cout, Cin, K, K), bias), forward and backward, as im2col + OpenBLAS GEMM.
//
// The batch is cut into chunks of `samplesPerGemm` samples whose patch columns sit side by side, so each GEMM is
// (Cout, Cin*K*K) x (Cin*K*K, B*Ho*Wo). With B = 1 the GEMM writes straight into y and reads dY in place; with
// B > 1 the output / dY goes through a (Cout, B*Ho*Wo) staging copy. Measured on the mnist shapes (batch 64,
// OpenBLAS SkylakeX kernels, 1 thread), OpenBLAS is already efficient at 196 columns, so B = 1 wins at 28x28 and
// 14x14 and only the 7x7 level gains (10-30% in backward) from packing ~5 samples; one GEMM over the whole batch
// was never faster and needs a 60-120 MB patch matrix. 1x1 stride-1 unpadded convs with B = 1 skip im2col
// entirely: x itself is the patch matrix. 3x3 stride-1 pad-1 convs with at least 8 channels in and out go through
// Winograd F(2x2, 3x3) or F(4x4, 3x3) instead (Winograd.swift), which do 2.25x / up to 4x fewer multiplies.

/// How a convolution is computed. All give the same result up to rounding.
public enum ConvAlgorithm: String, Sendable, Hashable {
    /// im2col + GEMM, any geometry.
    case im2col
    /// Winograd F(2x2, 3x3) (3x3, stride 1, pad 1 only).
    case winograd
    /// Winograd F(4x4, 3x3) (3x3, stride 1, pad 1 only).
    case winograd4

    public var isWinograd: Bool { self != .im2col }
}

public struct ConvShape: Sendable, Hashable {
    public var batch, inChannels, outChannels, height, width, kernel, stride, padding: Int
    /// Samples per GEMM; nil picks `defaultSamplesPerGemm`. Any value in 1...batch gives the same result.
    public var gemmSamples: Int?
    /// nil picks `defaultAlgorithm`; the Winograd ones need a 3x3, stride 1, pad 1 geometry.
    public var algorithmChoice: ConvAlgorithm?
    /// Of the GEMM operands (Precision.swift): fp32, or bf16 with fp32 accumulation.
    public var precision: Precision

    public init(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
                kernel: Int = 3, stride: Int = 1, padding: Int = 1, gemmSamples: Int? = nil,
                algorithm: ConvAlgorithm? = nil, precision: Precision = .fp32) {
        precondition(kernel >= 1 && stride >= 1 && padding >= 0, "conv kernel/stride must be >= 1, padding >= 0")
        self.batch = batch; self.inChannels = inChannels; self.outChannels = outChannels
        self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.gemmSamples = gemmSamples
        precondition(!(algorithm?.isWinograd ?? false) || (kernel == 3 && stride == 1 && padding == 1),
                     "Winograd needs kernel 3, stride 1, padding 1")
        self.algorithmChoice = algorithm
        self.precision = precision
    }

    /// Winograd for 3x3 "same" convs wide enough for its GEMMs (>= 8 channels each side) on maps of at least 7x7;
    /// im2col otherwise (the 1-channel image and hint convs, strided and 1x1 convs, tiny maps). F(4x4) where it
    /// measured faster than F(2x2): maps of 28x28 and up with >= 32 channels each side. Measured (`bench --convs`,
    /// batch 64, 1 thread, fastest chunk of each; forward + backward ms, im2col / F(2x2) / F(4x4)):
    ///   32->32 @28 39.9 / 21.8 / 18.8     96->32 @28 124 / 60.0 / 45.1     64->64 @28 131 / 67.0 / 49.6
    ///   16->16 @28 13.1 / 6.8 / 7.2       16->32 @28 20.6 / 11.5 / 11.9
    ///   64->64 @14 35.4 / 18.3 / 20.8     128->64 @14 76.2 / 37.5 / 40.8
    ///   64->64 @7  9.9 / 6.9 / 8.7        128->64 @7  20.2 / 14.7 / 15.6
    /// F(4x4)'s 6x6 tiles leave its GEMMs only 49 columns per sample at 28x28 and waste 31% on 14x14 and 7x7 maps
    /// (16x16 and 8x8 covered); with 16 channels the transforms dominate. At 7x7, F(2x2) (8x8 covered, the same
    /// waste) now beats im2col by 30%.
    public var defaultAlgorithm: ConvAlgorithm {
        guard kernel == 3 && stride == 1 && padding == 1 && inChannels >= 8 && outChannels >= 8 && height >= 7
            && width >= 7 else { return .im2col }
        return min(height, width) >= 28 && min(inChannels, outChannels) >= 32 ? .winograd4 : .winograd
    }
    public var algorithm: ConvAlgorithm { algorithmChoice ?? defaultAlgorithm }

    /// Every algorithm that can compute this conv (what `bench --convs` compares).
    public var applicableAlgorithms: [ConvAlgorithm] {
        kernel == 3 && stride == 1 && padding == 1 ? [.im2col, .winograd, .winograd4] : [.im2col]
    }

    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }

    /// Rows of the patch matrix: Cin * K * K.
    public var patchSize: Int { inChannels * kernel * kernel }
    /// 1x1, stride 1, no padding: the input is already the patch matrix of each sample.
    public var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    /// The rule from the measurements above: pack samples until a GEMM has at least 256 columns; pointwise
    /// convs stay per sample (their GEMM reads x in place, packing would only add a copy).
    public static func defaultSamplesPerGemm(outputPixels: Int, pointwise: Bool) -> Int {
        pointwise ? 1 : max(1, 256 / max(1, outputPixels))
    }

    public var samplesPerGemm: Int {
        let pixels = outHeight * outWidth
        let rule = algorithm.isWinograd
            ? Winograd.defaultSamplesPerGemm(self)
            : Self.defaultSamplesPerGemm(outputPixels: pixels, pointwise: isPointwise)
        return max(1, min(batch, gemmSamples ?? rule))
    }

    /// Floats of scratch that forward and backward need: the chunk's patch matrix, plus (when several samples
    /// share a GEMM) its (Cout, B*Ho*Wo) output / gathered dY.
    /// bf16 adds room for operands rounded by the conv itself (Conv2D.roundsOperands): the patch matrix even for
    /// pointwise convs, a rounded dY chunk, and the rounded weights.
    public var workspaceCount: Int {
        if algorithm.isWinograd { return Winograd.workspaceCount(self) }
        let b = samplesPerGemm
        let pixels = b * outHeight * outWidth
        if precision == .bf16 { return patchSize * pixels + outChannels * pixels + outChannels * patchSize }
        let cols = (isPointwise && b == 1) ? 0 : patchSize * pixels
        let gathered = b > 1 ? outChannels * pixels : 0
        return cols + gathered
    }
}

public enum Conv2D {
    /// x (N, Cin, H, W), weight (Cout, Cin, K, K), bias (Cout) -> y (N, Cout, Ho, Wo), overwritten.
    /// sampleBias (N, Cout), when given, is added too (a ResBlock's time projection, so it costs no extra pass).
    /// yStride: floats between samples of y (default Cout*Ho*Wo); larger writes into the leading channels of a
    /// wider tensor (the decoder's next concatenation). workspace: (s.workspaceCount). `transformed`: a cache of
    /// Winograd weights (inference, frozen weights), the same result. `norm`: the conv's input is silu(groupnorm(x)),
    /// normalised as the Winograd transforms read x (Winograd algorithms only: `fusesNorm`).
    public static func forward(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               workspace: UnsafeMutablePointer<Float>, sampleBias: UnsafePointer<Float>? = nil,
                               yStride: Int? = nil, transformed: TransformedWeights? = nil,
                               norm: NormalizedInput? = nil) {
        let phase = PhaseProfiler.shared.enter(.convForward)
        defer { PhaseProfiler.shared.leave(phase) }
        PhaseProfiler.shared.addConvPass(s)
        precondition(s.outHeight > 0 && s.outWidth > 0, "conv output would be empty: \(s)")
        precondition(norm == nil || fusesNorm(s), "a normalised input needs a Winograd conv: \(s)")
        if s.algorithm.isWinograd {
            Winograd.forward(s, x: x, weight: weight, bias: bias, sampleBias: sampleBias, y: y,
                             yStride: yStride ?? s.outChannels * s.outHeight * s.outWidth, workspace: workspace,
                             transformed: transformed, norm: norm)
            return
        }
        let pixels = s.outHeight * s.outWidth
        let inSize = s.inChannels * s.height * s.width, outSize = yStride ?? s.outChannels * pixels
        let kk = s.patchSize
        let chunk = s.samplesPerGemm
        // bf16 without native bf16 kernels: the operands are rounded here and multiplied by sgemm (see roundsOperands).
        let rounded = roundsOperands(s), gemm: Precision = rounded ? .fp32 : s.precision
        let w = rounded ? roundedWeights(s, weight, workspace) : weight
        var n0 = 0
        while n0 < s.batch {
            let b = min(chunk, s.batch - n0)
            let cols = workspace
            if b == 1 {
                let yn = y + n0 * outSize
                for co in 0..<s.outChannels {
                    let bv = bias[co] + (sampleBias?[n0 * s.outChannels + co] ?? 0)
                    (yn + co * pixels).update(repeating: bv, count: pixels)
                }
                let patches: UnsafePointer<Float>
                if s.isPointwise && rounded {
                    BF16Buffer.round(count: kk * pixels, x + n0 * inSize, into: cols)
                    patches = UnsafePointer(cols)
                } else if s.isPointwise {
                    patches = x + n0 * inSize
                } else {
                    Im2Col.im2col(s, x: x + n0 * inSize, cols: cols, ld: pixels, round: rounded)
                    patches = UnsafePointer(cols)
                }
                Gemm.product(gemm, transA: false, transB: false, m: s.outChannels, n: pixels, k: kk, alpha: 1,
                             a: w, lda: kk, b: patches, ldb: pixels, beta: 1, c: yn, ldc: pixels)
            } else {
                let ld = b * pixels
                let out = workspace + kk * ld  // (Cout, b * pixels)
                for j in 0..<b {
                    Im2Col.im2col(s, x: x + (n0 + j) * inSize, cols: cols + j * pixels, ld: ld, round: rounded)
                }
                Gemm.product(gemm, transA: false, transB: false, m: s.outChannels, n: ld, k: kk, alpha: 1,
                             a: w, lda: kk, b: cols, ldb: ld, beta: 0, c: out, ldc: ld)
                for j in 0..<b {
                    let yn = y + (n0 + j) * outSize
                    for co in 0..<s.outChannels {
                        let src = out + co * ld + j * pixels, dst = yn + co * pixels
                        let bv = bias[co] + (sampleBias?[(n0 + j) * s.outChannels + co] ?? 0)
                        for i in 0..<pixels { dst[i] = src[i] + bv }
                    }
                }
            }
            n0 += b
        }
    }

    /// Whether conv s can take its input as silu(groupnorm(x)) (`norm`): the Winograd transforms read x one
    /// channel plane at a time, so they normalise it on the way; im2col would need the normalised copy.
    public static func fusesNorm(_ s: ConvShape) -> Bool { s.algorithm.isWinograd }

    /// bf16 where the bf16 kernel is not native (BF16Kernel.isNative): the im2col path rounds its operands itself
    /// (patches as im2col writes them, dY chunks and weights into the workspace) and multiplies them with OpenBLAS
    /// sgemm, which is faster here than the bf16 kernel's FMA emulation with its packing. The same rounding: each
    /// product of two rounded values is exact in fp32, only the order of the fp32 sums differs.
    static func roundsOperands(_ s: ConvShape) -> Bool { s.precision == .bf16 && !BF16Kernel.isNative }

    /// weight (Cout, Cin K K) rounded to bf16 into its place at the end of the bf16 workspace.
    static func roundedWeights(_ s: ConvShape, _ weight: UnsafePointer<Float>,
                               _ workspace: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let pixels = s.samplesPerGemm * s.outHeight * s.outWidth
        let w = workspace + (s.patchSize + s.outChannels) * pixels
        BF16Buffer.round(count: s.outChannels * s.patchSize, weight, into: w)
        return UnsafePointer(w)
    }

    /// dY (N, Cout, Ho, Wo); adds into dX (N, Cin, H, W), dWeight (Cout, Cin, K, K), dBias (Cout) when non-nil.
    /// With `overwriteInput` dX is overwritten instead (for a fresh buffer: no zero fill first).
    /// x (N, Cin, H, W) is only read when dWeight != nil; weight only when dX != nil. `norm` as in forward: the
    /// weight gradient reads silu(groupnorm(x)); dX is the gradient at that normalised input.
    /// workspace: (s.workspaceCount).
    public static func backward(_ s: ConvShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                                dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                                workspace: UnsafeMutablePointer<Float>, overwriteInput: Bool = false,
                                norm: NormalizedInput? = nil) {
        let phase = PhaseProfiler.shared.enter(.convBackward)
        defer { PhaseProfiler.shared.leave(phase) }
        if dX != nil { PhaseProfiler.shared.addConvPass(s) }
        if dWeight != nil { PhaseProfiler.shared.addConvPass(s) }
        let pixels = s.outHeight * s.outWidth
        let inSize = s.inChannels * s.height * s.width, outSize = s.outChannels * pixels
        let kk = s.patchSize

        if let dBias {
            for n in 0..<s.batch {
                for co in 0..<s.outChannels { dBias[co] += Float(rowSum(dY + n * outSize + co * pixels, pixels)) }
            }
        }
        if dX == nil && dWeight == nil { return }
        precondition(norm == nil || fusesNorm(s), "a normalised input needs a Winograd conv: \(s)")
        if s.algorithm.isWinograd {
            Winograd.backward(s, x: x, weight: weight, dY: dY, dX: dX, dWeight: dWeight, workspace: workspace,
                              overwriteInput: overwriteInput, norm: norm)
            return
        }
        // im2col's adjoint scatters with overlaps: it always adds, into a zeroed buffer when overwriting.
        if overwriteInput, let dX { dX.update(repeating: 0, count: s.batch * s.inChannels * s.height * s.width) }

        let rounded = roundsOperands(s), gemm: Precision = rounded ? .fp32 : s.precision
        let w = rounded && dX != nil ? roundedWeights(s, weight, workspace) : weight
        let chunk = s.samplesPerGemm
        var n0 = 0
        while n0 < s.batch {
            let b = min(chunk, s.batch - n0)
            let ld = b * pixels
            let cols = workspace
            // dY of the chunk as a (Cout, ld) matrix: itself when b == 1 (a rounded copy when rounding), else
            // gathered behind the patches.
            let g: UnsafePointer<Float>
            if b == 1 && !rounded {
                g = dY + n0 * outSize
            } else if b == 1 {
                let copy = workspace + kk * ld
                BF16Buffer.round(count: outSize, dY + n0 * outSize, into: copy)
                g = UnsafePointer(copy)
            } else {
                let gathered = workspace + kk * ld
                for j in 0..<b {
                    for co in 0..<s.outChannels {
                        (gathered + co * ld + j * pixels).update(from: dY + (n0 + j) * outSize + co * pixels,
                                                                 count: pixels)
                    }
                }
                if rounded { BF16Buffer.round(count: s.outChannels * ld, gathered, into: gathered) }
                g = UnsafePointer(gathered)
            }
            if let dWeight {
                // dW (Cout, kk) += dY (Cout, ld) x patches^T (ld, kk)
                let patches: UnsafePointer<Float>
                if b == 1 && s.isPointwise && !rounded {
                    patches = x + n0 * inSize
                } else if b == 1 && s.isPointwise {
                    BF16Buffer.round(count: kk * pixels, x + n0 * inSize, into: cols)
                    patches = UnsafePointer(cols)
                } else {
                    for j in 0..<b {
                        Im2Col.im2col(s, x: x + (n0 + j) * inSize, cols: cols + j * pixels, ld: ld, round: rounded)
                    }
                    patches = UnsafePointer(cols)
                }
                Gemm.product(gemm, transA: false, transB: true, m: s.outChannels, n: kk, k: ld, alpha: 1,
                             a: g, lda: ld, b: patches, ldb: ld, beta: 1, c: dWeight, ldc: kk)
            }
            if let dX {
                // dPatches (kk, ld) = W^T (kk, Cout) x dY (Cout, ld), then scattered back (col2im adds).
                if b == 1 && s.isPointwise {
                    Gemm.product(gemm, transA: true, transB: false, m: kk, n: ld, k: s.outChannels, alpha: 1,
                                 a: w, lda: kk, b: g, ldb: ld, beta: 1, c: dX + n0 * inSize, ldc: ld)
                } else {
                    Gemm.product(gemm, transA: true, transB: false, m: kk, n: ld, k: s.outChannels, alpha: 1,
                                 a: w, lda: kk, b: g, ldb: ld, beta: 0, c: cols, ldc: ld)
                    for j in 0..<b { Im2Col.col2im(s, cols: cols + j * pixels, ld: ld, dX: dX + (n0 + j) * inSize) }
                }
            }
            n0 += b
        }
    }
}
