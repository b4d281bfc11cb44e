// im2col / col2im: the patch matrix that turns a convolution into one GEMM. Row r = (c, kh, kw) of the matrix
// holds, for every output pixel (oh, ow), the input x[c, oh*stride - pad + kh, ow*stride - pad + kw] (0 in the
// padding). Columns of several samples sit side by side (row stride `ld`), so one GEMM can cover a whole chunk
// of the batch.

extension ConvShape {
    /// The output columns [lo, hi) whose input column ow*stride - pad + kw falls inside the image; the rest of
    /// the row reads padding. Computed once per (kw) so the inner loops have no bounds tests.
    @inline(__always)
    func validColumns(kw: Int) -> (lo: Int, hi: Int) {
        let lo = padding > kw ? (padding - kw + stride - 1) / stride : 0
        let last = width - 1 + padding - kw  // largest ow*stride that stays inside
        if last < 0 { return (lo, lo) }
        let hi = min(outWidth, last / stride + 1)
        return (min(lo, hi), hi)
    }
}

enum Im2Col {
    /// x: one sample (Cin, H, W) -> cols rows (Cin*K*K) of Ho*Wo values each, row stride ld.
    static func im2col(_ s: ConvShape, x: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>, ld: Int) {
        let k = s.kernel, st = s.stride, pad = s.padding
        let h = s.height, w = s.width, ho = s.outHeight, wo = s.outWidth
        for c in 0..<s.inChannels {
            let plane = x + c * h * w
            for kh in 0..<k {
                for kw in 0..<k {
                    let row = cols + ((c * k + kh) * k + kw) * ld
                    let (lo, hi) = s.validColumns(kw: kw)
                    for oh in 0..<ho {
                        let dst = row + oh * wo
                        let ih = oh * st - pad + kh
                        if ih < 0 || ih >= h {
                            for ow in 0..<wo { dst[ow] = 0 }
                            continue
                        }
                        // src[ow * st] is x[c, ih, ow * st - pad + kw]; only [lo, hi) is dereferenced.
                        let src = plane + ih * w + (kw - pad)
                        for ow in 0..<lo { dst[ow] = 0 }
                        if st == 1 {
                            for ow in lo..<hi { dst[ow] = src[ow] }
                        } else {
                            for ow in lo..<hi { dst[ow] = src[ow * st] }
                        }
                        for ow in hi..<wo { dst[ow] = 0 }
                    }
                }
            }
        }
    }

    /// The adjoint of im2col: dX, one sample (Cin, H, W), += every cols entry scattered back to its input pixel.
    static func col2im(_ s: ConvShape, cols: UnsafePointer<Float>, ld: Int, dX: UnsafeMutablePointer<Float>) {
        let k = s.kernel, st = s.stride, pad = s.padding
        let h = s.height, w = s.width, ho = s.outHeight, wo = s.outWidth
        for c in 0..<s.inChannels {
            let plane = dX + c * h * w
            for kh in 0..<k {
                for kw in 0..<k {
                    let row = cols + ((c * k + kh) * k + kw) * ld
                    let (lo, hi) = s.validColumns(kw: kw)
                    for oh in 0..<ho {
                        let ih = oh * st - pad + kh
                        if ih < 0 || ih >= h { continue }
                        let src = row + oh * wo
                        let dst = plane + ih * w + (kw - pad)
                        if st == 1 {
                            for ow in lo..<hi { dst[ow] += src[ow] }
                        } else {
                            for ow in lo..<hi { dst[ow * st] += src[ow] }
                        }
                    }
                }
            }
        }
    }
}
