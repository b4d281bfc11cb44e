// Resizing planes (C, H, W) of uint8 as diffusers' train_controlnet.py does: torchvision Resize(S) (short side to S,
// long side int(S * long / short)) then CenterCrop(S) (offset int(round((H - S) / 2)), Python's round half to even).
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
// Only the output pixels inside the crop are computed; each depends on its own coefficients alone, so this equals
// resizing everything and cropping.
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

    /// planes: (C, H, W) resized to (C, toHeight, toWidth), of which only `rows` x `columns` are computed and
    /// returned: (C, rows.count, columns.count).
    public static func resize(_ planes: [UInt8], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int,
                              rows: Range<Int>, columns: Range<Int>, filter: ResizeFilter) -> [UInt8] {
        switch filter {
        case .bilinear:
            return bilinear(planes, channels: channels, height: height, width: width, toHeight: toHeight,
                            toWidth: toWidth, rows: rows, columns: columns)
        case .area:
            return area(planes, channels: channels, height: height, width: width, toHeight: toHeight,
                        toWidth: toWidth, rows: rows, columns: columns)
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

    static func bilinear(_ planes: [UInt8], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int,
                         rows: Range<Int>, columns: Range<Int>) -> [UInt8] {
        let vertical = toHeight == height ? nil : bilinearCoefficients(from: height, to: toHeight, outputs: rows)
        let horizontal = toWidth == width ? nil : bilinearCoefficients(from: width, to: toWidth, outputs: columns)
        switch (horizontal, vertical) {
        case (nil, nil):
            return verticalPass(planes, channels: channels, rows: height, columns: width, keep: columns,
                                coefficients: rows.map { ($0, [Int32(1 << precisionBits)]) }, rowOffset: 0)
        case let (h?, nil):
            return horizontalPass(planes, channels: channels, rows: height, columns: width, keep: rows,
                                  coefficients: h, columnOffset: 0)
        case let (nil, v?):
            return verticalPass(planes, channels: channels, rows: height, columns: width, keep: columns,
                                coefficients: v, rowOffset: 0)
        case let (h?, v?):
            // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as
            // the width (earlier Pillow always went horizontal first; the results differ by one level here and
            // there). Each pass reads only the rows or columns the other needs.
            if (height - toHeight) > 0 && (height - toHeight) > (width - toWidth) * 2 {
                let first = h.first?.0 ?? 0, last = h.map { $0.0 + $0.1.count }.max() ?? first
                let temp = verticalPass(planes, channels: channels, rows: height, columns: width,
                                        keep: first ..< last, coefficients: v, rowOffset: 0)
                return horizontalPass(temp, channels: channels, rows: rows.count, columns: last - first,
                                      keep: 0 ..< rows.count, coefficients: h, columnOffset: first)
            }
            let first = v.first?.0 ?? 0, last = v.map { $0.0 + $0.1.count }.max() ?? first
            let temp = horizontalPass(planes, channels: channels, rows: height, columns: width, keep: first ..< last,
                                      coefficients: h, columnOffset: 0)
            return verticalPass(temp, channels: channels, rows: last - first, columns: columns.count,
                                keep: 0 ..< columns.count, coefficients: v, rowOffset: first)
        }
    }

    /// src: (C, rows, columns). For the rows in `keep`, each output column x is the weighted sum of src columns
    /// coefficients[x].0 - columnOffset ..., rounded to uint8. Result: (C, keep.count, coefficients.count).
    static func horizontalPass(_ src: [UInt8], channels: Int, rows: Int, columns: Int, keep: Range<Int>,
                               coefficients: [(Int, [Int32])], columnOffset: Int) -> [UInt8] {
        let half = 1 << (precisionBits - 1), outColumns = coefficients.count
        var out = [UInt8](repeating: 0, count: channels * keep.count * outColumns)
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for c in 0 ..< channels {
                    for (y, row) in keep.enumerated() {
                        let srow = (c * rows + row) * columns - columnOffset
                        let drow = (c * keep.count + y) * outColumns
                        for (x, (xmin, k)) in coefficients.enumerated() {
                            var sum = half
                            for t in 0 ..< k.count { sum += Int(s[srow + xmin + t]) * Int(k[t]) }
                            d[drow + x] = clip8(sum)
                        }
                    }
                }
            }
        }
        return out
    }

    /// src: (C, rows, columns). For the columns in `keep`, each output row y is the weighted sum of src rows
    /// coefficients[y].0 - rowOffset ..., rounded to uint8. Result: (C, coefficients.count, keep.count).
    static func verticalPass(_ src: [UInt8], channels: Int, rows: Int, columns: Int, keep: Range<Int>,
                             coefficients: [(Int, [Int32])], rowOffset: Int) -> [UInt8] {
        let half = 1 << (precisionBits - 1), outRows = coefficients.count, width = keep.count
        var out = [UInt8](repeating: 0, count: channels * outRows * width)
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for c in 0 ..< channels {
                    for (y, (ymin, k)) in coefficients.enumerated() {
                        let drow = (c * outRows + y) * width
                        for x in 0 ..< width {
                            var sum = half
                            for t in 0 ..< k.count {
                                sum += Int(s[(c * rows + ymin - rowOffset + t) * columns + keep.lowerBound + x]) * Int(k[t])
                            }
                            d[drow + x] = clip8(sum)
                        }
                    }
                }
            }
        }
        return out
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

    static func area(_ planes: [UInt8], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int,
                     rows: Range<Int>, columns: Range<Int>) -> [UInt8] {
        let wy = areaWeights(from: height, to: toHeight, outputs: rows)
        let wx = areaWeights(from: width, to: toWidth, outputs: columns)
        let denominator = height * width  // the weights sum to `height` along y and `width` along x
        var out = [UInt8](repeating: 0, count: channels * rows.count * columns.count)
        var rowSums = [Int](repeating: 0, count: columns.count)
        planes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0 ..< channels {
                    for (y, (ymin, ky)) in wy.enumerated() {
                        for x in 0 ..< columns.count { rowSums[x] = 0 }
                        for (t, weightY) in ky.enumerated() {
                            let srow = (c * height + ymin + t) * width
                            for (x, (xmin, kx)) in wx.enumerated() {
                                var s = 0
                                for (u, weightX) in kx.enumerated() { s += Int(src[srow + xmin + u]) * weightX }
                                rowSums[x] += s * weightY
                            }
                        }
                        let drow = (c * rows.count + y) * columns.count
                        for x in 0 ..< columns.count {
                            dst[drow + x] = UInt8((rowSums[x] + denominator / 2) / denominator)
                        }
                    }
                }
            }
        }
        return out
    }
}
