// Area resampling of a whole dataset to another image size (e.g. 28x28 digits for an 8x8 test model or a 32x32
// model). Each output pixel averages the input area it covers, with fractional coverage at the edges, so
// downsampling does not alias and upsampling degrades to bilinear-like blocks.
import Foundation

extension ImageDataset {
    public func resized(height newH: Int, width newW: Int) -> ImageDataset {
        if newH == height && newW == width { return self }
        let rows = Self.areaWeights(from: height, to: newH), cols = Self.areaWeights(from: width, to: newW)
        var out = [UInt8](repeating: 0, count: count * channels * newH * newW)
        var plane = [Double](repeating: 0, count: height * newW)
        pixels.withUnsafeBufferPointer { src in
            for img in 0..<(count * channels) {
                let base = img * height * width
                // Columns first: (H, W) -> (H, newW).
                for y in 0..<height {
                    for (x, taps) in cols.enumerated() {
                        var s = 0.0
                        for (i, w) in taps { s += w * Double(src[base + y * width + i]) }
                        plane[y * newW + x] = s
                    }
                }
                for (y, taps) in rows.enumerated() {
                    for x in 0..<newW {
                        var s = 0.0
                        for (i, w) in taps { s += w * plane[i * newW + x] }
                        out[img * newH * newW + y * newW + x] = UInt8(max(0, min(255, s.rounded())))
                    }
                }
            }
        }
        return ImageDataset(name: "\(name)@\(newH)x\(newW)", count: count, channels: channels, height: newH,
                            width: newW, pixels: out, labels: labels)
    }

    /// For each output index, the input indices it covers and their weights (summing to 1).
    static func areaWeights(from n: Int, to m: Int) -> [[(Int, Double)]] {
        let scale = Double(n) / Double(m)
        return (0..<m).map { j in
            if scale <= 1 {
                // Upsampling: linear interpolation between the two nearest input centres.
                let c = (Double(j) + 0.5) * scale - 0.5
                let i0 = max(0, min(n - 1, Int(c.rounded(.down)))), i1 = min(n - 1, i0 + 1)
                let f = max(0, min(1, c - Double(i0)))
                return i0 == i1 ? [(i0, 1)] : [(i0, 1 - f), (i1, f)]
            }
            let lo = Double(j) * scale, hi = Double(j + 1) * scale
            var taps: [(Int, Double)] = []
            for i in Int(lo.rounded(.down))..<min(n, Int(hi.rounded(.up))) {
                let cover = min(hi, Double(i + 1)) - max(lo, Double(i))
                if cover > 0 { taps.append((i, cover / scale)) }
            }
            return taps
        }
    }
}
