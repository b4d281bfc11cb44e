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

extension ConvShape {
    /// Stride 1 and output size = input size ("same" padding): row (c, kh, kw) of the patch matrix is then the
    /// plane shifted by one constant offset, so im2col is a block copy plus zeroed borders.
    var isSameStride1: Bool { stride == 1 && outHeight == height && outWidth == width }

    /// For a same/stride-1 conv and kernel offset (kh, kw): the shift of the source index, the range of output
    /// indices whose row is inside the image, and the columns [lo, hi) whose source column is inside it.
    /// `first ..< end` is cut to the indices whose source lies inside the plane (the at most |dx| left out are
    /// wrapped columns, zero anyway).
    @inline(__always)
    func shift(kh: Int, kw: Int) -> (offset: Int, first: Int, end: Int, lo: Int, hi: Int) {
        let dy = kh - padding, dx = kw - padding
        let firstRow = max(0, -dy), endRow = max(firstRow, min(height, height - dy))
        let offset = dy * width + dx, pixels = height * width
        let first = max(firstRow * width, -offset), end = max(first, min(endRow * width, pixels - offset))
        return (offset, first, end, max(0, -dx), min(width, width - dx))
    }
}

enum Im2Col {
    /// x: one sample (Cin, H, W) -> cols rows (Cin*K*K) of Ho*Wo values each, row stride ld; with `round`, each
    /// row is rounded to bf16 while it is still in L1 (a bf16 convolution's GEMM operand).
    static func im2col(_ s: ConvShape, x: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>, ld: Int,
                       round: Bool = false) {
        if s.isSameStride1 { return im2colSame(s, x: x, cols: cols, ld: ld, round: round) }
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
                    if round { BF16Buffer.round(count: ho * wo, row, into: row) }
                }
            }
        }
    }

    /// im2col of a same/stride-1 conv: each row is one shifted block copy; rows above/below the image and the
    /// columns that would wrap into the neighbouring image row are zeroed.
    static func im2colSame(_ s: ConvShape, x: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>, ld: Int,
                           round: Bool) {
        let k = s.kernel, w = s.width, pixels = s.height * s.width
        for c in 0..<s.inChannels {
            let plane = x + c * pixels
            for kh in 0..<k {
                for kw in 0..<k {
                    let row = cols + ((c * k + kh) * k + kw) * ld
                    let sh = s.shift(kh: kh, kw: kw)
                    row.update(repeating: 0, count: sh.first)
                    (row + sh.first).update(from: plane + sh.first + sh.offset, count: sh.end - sh.first)
                    (row + sh.end).update(repeating: 0, count: pixels - sh.end)
                    if sh.lo > 0 || sh.hi < w {
                        for r in stride(from: 0, to: pixels, by: w) {
                            for j in 0..<sh.lo { row[r + j] = 0 }
                            for j in sh.hi..<w { row[r + j] = 0 }
                        }
                    }
                    if round { BF16Buffer.round(count: pixels, row, into: row) }
                }
            }
        }
    }

    /// The adjoint of im2col: dX, one sample (Cin, H, W), += every cols entry scattered back to its input pixel.
    /// For same/stride-1 convs `cols` is used as scratch (its wrapped-column entries are zeroed first).
    static func col2im(_ s: ConvShape, cols: UnsafeMutablePointer<Float>, ld: Int, dX: UnsafeMutablePointer<Float>) {
        if s.isSameStride1 {
            let k = s.kernel, w = s.width, pixels = s.height * s.width
            for c in 0..<s.inChannels {
                let plane = dX + c * pixels
                for kh in 0..<k {
                    for kw in 0..<k {
                        let row = cols + ((c * k + kh) * k + kw) * ld
                        let sh = s.shift(kh: kh, kw: kw)
                        if sh.lo > 0 || sh.hi < w {
                            for r in stride(from: 0, to: pixels, by: w) {
                                for j in 0..<sh.lo { row[r + j] = 0 }
                                for j in sh.hi..<w { row[r + j] = 0 }
                            }
                        }
                        let dst = plane + sh.first + sh.offset, src = row + sh.first
                        for i in 0..<(sh.end - sh.first) { dst[i] += src[i] }
                    }
                }
            }
            return
        }
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
