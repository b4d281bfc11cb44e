// Resizing 8-bit images as diffusers' train_controlnet.py does: torchvision Resize(S) (short side to S, long side
// int(S * long / short)) then CenterCrop(S) (offset int(round((H - S) / 2)), Python's round half to even).
// Filters:
// - bilinear: Pillow's Image.resize(BILINEAR), which torchvision calls for PIL images: a triangle filter whose
//   support is scaled by the downscale factor (antialiasing), coefficients normalised and rounded to 22-bit fixed
//   point, one pass per axis each rounded to uint8, in Pillow 13's order (see bilinear()). Same arithmetic, same
//   order, so the output is byte-identical to Pillow 13's (checked against fixtures made by
//   scripts/fixtures/make_image_fixtures.py); Pillow <= 12 always ran the horizontal pass first, so for images whose
//   height shrinks by more than twice as many pixels as their width it differs from those by +-1 in places;
// - area: each output pixel is the exact mean of the input area it covers (fractional coverage at the edges),
//   computed in integers and rounded half up: a k x k block average for integer factors. Upscaling by area gives
//   nearest-neighbour blocks blended where an output pixel straddles two input pixels.
// The work is done on interleaved pixels (H, W, C), all channels of a pixel in one inner loop, as Pillow does;
// planes (C, H, W) are resized one at a time. Only the output pixels inside the crop are computed; each depends on
// its own coefficients alone, so this equals resizing everything and cropping.
import Foundation

public enum ResizeFilter: String, Sendable, CaseIterable {
    case area, bilinear
}

public enum ImageResize {
    /// torchvision's Resize(S) output size: the short side becomes S, the long side int(S * long / short).
    public static func shortSideSize(height: Int, width: Int, to size: Int) -> (height: Int, width: Int) {
        if height <= width {
            return (size, Int(Double(size * width) / Double(height)))
        }
        return (Int(Double(size * height) / Double(width)), size)
    }

    /// torchvision's CenterCrop offset: int(round((n - size) / 2)), round half to even as Python does.
    public static func centerCropOffset(_ n: Int, _ size: Int) -> Int {
        Int((Double(n - size) / 2).rounded(.toNearestOrEven))
    }

    /// planes: (C, H, W) -> (C, size, size): short side to `size`, then the centre size x size square.
    public static func resizeShortSideAndCenterCrop(_ planes: [UInt8], channels: Int, height: Int, width: Int,
                                                    size: Int, filter: ResizeFilter) -> [UInt8] {
        let (h, w) = shortSideSize(height: height, width: width, to: size)
        let y0 = centerCropOffset(h, size), x0 = centerCropOffset(w, size)
        return resize(planes, channels: channels, height: height, width: width, toHeight: h, toWidth: w,
                      rows: y0 ..< y0 + size, columns: x0 ..< x0 + size, filter: filter)
    }

    /// pixels: (H, W, C) interleaved -> (size, size, C) interleaved, as resizeShortSideAndCenterCrop.
    public static func resizeShortSideAndCenterCrop(interleaved pixels: [UInt8], channels: Int, height: Int,
                                                    width: Int, size: Int, filter: ResizeFilter) -> [UInt8] {
        let (h, w) = shortSideSize(height: height, width: width, to: size)
        let y0 = centerCropOffset(h, size), x0 = centerCropOffset(w, size)
        return resize(interleaved: pixels, channels: channels, height: height, width: width, toHeight: h,
                      toWidth: w, rows: y0 ..< y0 + size, columns: x0 ..< x0 + size, filter: filter)
    }

    /// planes: (C, H, W) resized to (C, toHeight, toWidth), of which only `rows` x `columns` are computed and
    /// returned: (C, rows.count, columns.count).
    public static func resize(_ planes: [UInt8], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int,
                              rows: Range<Int>, columns: Range<Int>, filter: ResizeFilter) -> [UInt8] {
        let n = height * width
        var out: [UInt8] = []
        out.reserveCapacity(channels * rows.count * columns.count)
        for c in 0 ..< channels {
            out += resize(interleaved: Array(planes[c * n ..< (c + 1) * n]), channels: 1, height: height,
                          width: width, toHeight: toHeight, toWidth: toWidth, rows: rows, columns: columns,
                          filter: filter)
        }
        return out
    }

    /// pixels: (H, W, C) interleaved, resized to (toHeight, toWidth, C), of which only `rows` x `columns` are
    /// computed and returned: (rows.count, columns.count, C).
    public static func resize(interleaved pixels: [UInt8], channels: Int, height: Int, width: Int, toHeight: Int,
                              toWidth: Int, rows: Range<Int>, columns: Range<Int>, filter: ResizeFilter) -> [UInt8] {
        switch filter {
        case .bilinear:
            return bilinear(pixels, channels: channels, height: height, width: width, toHeight: toHeight,
                            toWidth: toWidth, rows: rows, columns: columns)
        case .area:
            return area(pixels, channels: channels, height: height, width: width, toHeight: toHeight,
                        toWidth: toWidth, rows: rows, columns: columns)
        }
    }

    /// (count, C) interleaved -> (C, count) planes.
    public static func planes(fromInterleaved pixels: [UInt8], channels: Int) -> [UInt8] {
        if channels == 1 { return pixels }
        let n = pixels.count / channels
        return [UInt8](unsafeUninitializedCapacity: pixels.count) { dst, initialized in
            pixels.withUnsafeBufferPointer { src in
                for k in 0 ..< n { for c in 0 ..< channels { dst[c * n + k] = src[k * channels + c] } }
            }
            initialized = pixels.count
        }
    }

    // MARK: bilinear (Pillow)

    static let precisionBits = 22  // Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2

    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the triangle filter, for the outputs in `outputs`:
    /// each output's first input index and its fixed-point weights.
    static func bilinearCoefficients(from inSize: Int, to outSize: Int, outputs: Range<Int>) -> [(Int, [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = 1.0 * filterScale
        let ss = 1.0 / filterScale
        return outputs.map { xx in
            let center = 0.0 + (Double(xx) + 0.5) * scale
            let xmin = max(0, Int(center - support + 0.5))
            let xmax = min(inSize, Int(center + support + 0.5)) - xmin
            var weights = [Double](repeating: 0, count: max(0, xmax))
            var total = 0.0
            for x in 0 ..< max(0, xmax) {
                let t = abs((Double(x + xmin) - center + 0.5) * ss)
                let w = t < 1.0 ? 1.0 - t : 0.0
                weights[x] = w
                total += w
            }
            let one = Double(1 << precisionBits)
            let fixed = weights.map { w -> Int32 in
                let k = total != 0 ? w / total : w
                return Int32(k < 0 ? -0.5 + k * one : 0.5 + k * one)
            }
            return (xmin, fixed)
        }
    }

    @inline(__always)
    static func clip8(_ v: Int) -> UInt8 { UInt8(max(0, min(255, v >> precisionBits))) }

    static func bilinear(_ pixels: [UInt8], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int,
                         rows: Range<Int>, columns: Range<Int>) -> [UInt8] {
        let vertical = toHeight == height ? nil : bilinearCoefficients(from: height, to: toHeight, outputs: rows)
        let horizontal = toWidth == width ? nil : bilinearCoefficients(from: width, to: toWidth, outputs: columns)
        let c = channels
        switch (horizontal, vertical) {
        case (nil, nil):
            if rows.count == height && columns.count == width { return pixels }
            var out: [UInt8] = []
            out.reserveCapacity(rows.count * columns.count * c)
            for y in rows { out += pixels[(y * width + columns.lowerBound) * c ..< (y * width + columns.upperBound) * c] }
            return out
        case let (h?, nil):
            return horizontalPass(pixels, channels: c, columns: width, keep: rows, taps: Taps(h, offset: 0))
        case let (nil, v?):
            return verticalPass(pixels, channels: c, columns: width, keep: columns, taps: Taps(v, offset: 0))
        case let (h?, v?):
            // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as
            // the width (earlier Pillow always went horizontal first; the results differ by one level here and
            // there). Each pass reads only the rows or columns the other needs.
            if (height - toHeight) > 0 && (height - toHeight) > (width - toWidth) * 2 {
                let first = h.first?.0 ?? 0, last = h.map { $0.0 + $0.1.count }.max() ?? first
                let temp = verticalPass(pixels, channels: c, columns: width, keep: first ..< last,
                                        taps: Taps(v, offset: 0))
                return horizontalPass(temp, channels: c, columns: last - first, keep: 0 ..< rows.count,
                                      taps: Taps(h, offset: first))
            }
            let first = v.first?.0 ?? 0, last = v.map { $0.0 + $0.1.count }.max() ?? first
            let temp = horizontalPass(pixels, channels: c, columns: width, keep: first ..< last,
                                      taps: Taps(h, offset: 0))
            return verticalPass(temp, channels: c, columns: columns.count, keep: 0 ..< columns.count,
                                taps: Taps(v, offset: first))
        }
    }

    /// Coefficients laid out flat for the inner loops: output i reads `count[i]` inputs from `first[i]`, with
    /// weights[i * stride ..< i * stride + count[i]]. (Arrays of arrays would cost a retain per output pixel.)
    struct Taps {
        let first: [Int], count: [Int], stride: Int, weights: [Int32]

        init(_ coefficients: [(Int, [Int32])], offset: Int) {
            first = coefficients.map { $0.0 - offset }
            count = coefficients.map { $0.1.count }
            stride = max(1, count.max() ?? 1)
            var w = [Int32](repeating: 0, count: coefficients.count * stride)
            for (i, (_, k)) in coefficients.enumerated() { for t in 0 ..< k.count { w[i * stride + t] = k[t] } }
            weights = w
        }
    }

    /// src: (rows, columns, C). For the rows in `keep`, output column x is the weighted sum of src columns
    /// taps.first[x] ..., rounded to uint8. Result: (keep.count, taps.count.count, C).
    static func horizontalPass(_ src: [UInt8], channels c: Int, columns: Int, keep: Range<Int>, taps: Taps)
        -> [UInt8]
    {
        let half = 1 << (precisionBits - 1), outColumns = taps.first.count, stride = taps.stride
        let total = keep.count * outColumns * c
        return [UInt8](unsafeUninitializedCapacity: total) { d, initialized in
            src.withUnsafeBufferPointer { s in
                taps.weights.withUnsafeBufferPointer { w in
                    for (y, row) in keep.enumerated() {
                        let srow = row * columns * c, drow = y * outColumns * c
                        for x in 0 ..< outColumns {
                            let base = srow + taps.first[x] * c, k = x * stride, n = taps.count[x]
                            if c == 3 {
                                var s0 = half, s1 = half, s2 = half
                                for t in 0 ..< n {
                                    let weight = Int(w[k + t]), p = base + 3 * t
                                    s0 += Int(s[p]) * weight
                                    s1 += Int(s[p + 1]) * weight
                                    s2 += Int(s[p + 2]) * weight
                                }
                                d[drow + 3 * x] = clip8(s0)
                                d[drow + 3 * x + 1] = clip8(s1)
                                d[drow + 3 * x + 2] = clip8(s2)
                            } else {
                                for ch in 0 ..< c {
                                    var sum = half
                                    for t in 0 ..< n { sum += Int(s[base + c * t + ch]) * Int(w[k + t]) }
                                    d[drow + c * x + ch] = clip8(sum)
                                }
                            }
                        }
                    }
                }
            }
            initialized = total
        }
    }

    /// src: (rows, columns, C). For the columns in `keep`, output row y is the weighted sum of src rows
    /// taps.first[y] ..., rounded to uint8. Result: (taps.count.count, keep.count, C).
    static func verticalPass(_ src: [UInt8], channels c: Int, columns: Int, keep: Range<Int>, taps: Taps)
        -> [UInt8]
    {
        let half = 1 << (precisionBits - 1), outRows = taps.first.count, width = keep.count * c
        // Whole rows at a time (contiguous reads, vectorisable), one Int sum per output sample.
        var sums = [Int](repeating: 0, count: width)
        return [UInt8](unsafeUninitializedCapacity: outRows * width) { d, initialized in
            src.withUnsafeBufferPointer { s in
                sums.withUnsafeMutableBufferPointer { acc in
                    for y in 0 ..< outRows {
                        for x in 0 ..< width { acc[x] = half }
                        for t in 0 ..< taps.count[y] {
                            let weight = Int(taps.weights[y * taps.stride + t])
                            let srow = ((taps.first[y] + t) * columns + keep.lowerBound) * c
                            for x in 0 ..< width { acc[x] += Int(s[srow + x]) * weight }
                        }
                        for x in 0 ..< width { d[y * width + x] = clip8(acc[x]) }
                    }
                }
            }
            initialized = outRows * width
        }
    }

    // MARK: area (exact)

    /// Output j of n -> m covers input [j*n/m, (j+1)*n/m). In units of 1/m input pixel it covers [j*n, (j+1)*n) and
    /// input i covers [i*m, (i+1)*m), so every overlap is an integer and the weights of one output sum to n.
    static func areaWeights(from n: Int, to m: Int, outputs: Range<Int>) -> [(Int, [Int])] {
        outputs.map { j in
            let lo = j * n, hi = (j + 1) * n
            let first = lo / m, last = (hi - 1) / m
            let weights = (first ... last).map { i in min(hi, (i + 1) * m) - max(lo, i * m) }
            return (first, weights)
        }
    }

    /// pixels: (H, W, C) -> (rows.count, columns.count, C), exact integer means.
    static func area(_ pixels: [UInt8], channels c: Int, height: Int, width: Int, toHeight: Int, toWidth: Int,
                     rows: Range<Int>, columns: Range<Int>) -> [UInt8] {
        let wy = areaWeights(from: height, to: toHeight, outputs: rows)
        let wx = areaWeights(from: width, to: toWidth, outputs: columns)
        let xFirst = wx.map(\.0), xCount = wx.map { $0.1.count }, xStride = max(1, xCount.max() ?? 1)
        var xWeights = [Int](repeating: 0, count: wx.count * xStride)
        for (x, (_, k)) in wx.enumerated() { for u in 0 ..< k.count { xWeights[x * xStride + u] = k[u] } }
        let denominator = height * width  // the weights sum to `height` along y and `width` along x
        let rowWidth = columns.count * c
        var rowSums = [Int](repeating: 0, count: rowWidth)
        return [UInt8](unsafeUninitializedCapacity: rows.count * rowWidth) { dst, initialized in
            pixels.withUnsafeBufferPointer { src in
                xWeights.withUnsafeBufferPointer { w in
                    rowSums.withUnsafeMutableBufferPointer { acc in
                        for (y, (ymin, ky)) in wy.enumerated() {
                            for x in 0 ..< rowWidth { acc[x] = 0 }
                            for t in 0 ..< ky.count {
                                let weightY = ky[t], srow = (ymin + t) * width * c
                                for x in 0 ..< columns.count {
                                    let base = srow + xFirst[x] * c, k = x * xStride
                                    for ch in 0 ..< c {
                                        var sum = 0
                                        for u in 0 ..< xCount[x] { sum += Int(src[base + c * u + ch]) * w[k + u] }
                                        acc[x * c + ch] += sum * weightY
                                    }
                                }
                            }
                            for x in 0 ..< rowWidth {
                                dst[y * rowWidth + x] = UInt8((acc[x] + denominator / 2) / denominator)
                            }
                        }
                    }
                }
            }
            initialized = rows.count * rowWidth
        }
    }
}
