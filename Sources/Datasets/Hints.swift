// The hint functions behind HintKind: uint8 image (H, W) -> uint8 hint (H, W), 0...255 standing for [0, 1].
// Integer arithmetic where possible, so a hint is the same on every machine and every rank.
public enum Hints {
    /// Pixels at or above this are "ink" for the mask and scribble hints.
    public static let maskThreshold: UInt8 = 128
    /// Side of the tile hint's square tiles.
    public static let tileSize = 4

    /// image: (H, W); out: (H, W). `seed` and `index` only matter for random kinds.
    public static func compute(_ kind: HintKind, image: UnsafePointer<UInt8>, height: Int, width: Int,
                               seed: UInt64 = 0, index: Int = 0, into out: UnsafeMutablePointer<UInt8>) {
        switch kind {
        case .canny:
            Canny.edges(image, height: height, width: width, low: Canny.defaultLow, high: Canny.defaultHigh, into: out)
        case .cannyRandom:
            let t = Canny.randomThresholds(seed: seed, index: index)
            Canny.edges(image, height: height, width: width, low: t.low, high: t.high, into: out)
        case .sobel: sobelMagnitude(image, height: height, width: width, into: out)
        case .mask: mask(image, count: height * width, into: out)
        case .scribble: scribble(image, height: height, width: width, into: out)
        case .tile: tile(image, height: height, width: width, into: out)
        case .blur: blur(image, height: height, width: width, into: out)
        }
    }

    static func sobelMagnitude(_ image: UnsafePointer<UInt8>, height: Int, width: Int,
                               into out: UnsafeMutablePointer<UInt8>) {
        let n = height * width
        let dx = UnsafeMutablePointer<Int32>.allocate(capacity: n), dy = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        defer { dx.deallocate(); dy.deallocate() }
        Sobel.gradients(image, height: height, width: width, dx: dx, dy: dy)
        for k in 0 ..< n {
            let m = Double(dx[k] * dx[k] + dy[k] * dy[k]).squareRoot()
            out[k] = UInt8(min(255, (m * 255 / 1020).rounded()))
        }
    }

    static func mask(_ image: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutablePointer<UInt8>) {
        for k in 0 ..< count { out[k] = image[k] >= maskThreshold ? 255 : 0 }
    }

    static func scribble(_ image: UnsafePointer<UInt8>, height: Int, width: Int, into out: UnsafeMutablePointer<UInt8>) {
        var bits = [UInt8](repeating: 0, count: height * width)
        for k in 0 ..< height * width { bits[k] = image[k] >= maskThreshold ? 1 : 0 }
        Morphology.thinZhangSuen(&bits, height: height, width: width)
        Morphology.dilate3x3(bits, height: height, width: width, into: out)
    }

    static func tile(_ image: UnsafePointer<UInt8>, height: Int, width: Int, into out: UnsafeMutablePointer<UInt8>) {
        let t = tileSize
        for ti in stride(from: 0, to: height, by: t) {
            for tj in stride(from: 0, to: width, by: t) {
                let rows = ti ..< min(ti + t, height), cols = tj ..< min(tj + t, width)
                var sum = 0
                for i in rows { for j in cols { sum += Int(image[i * width + j]) } }
                let area = rows.count * cols.count
                let mean = UInt8((sum + area / 2) / area)
                for i in rows { for j in cols { out[i * width + j] = mean } }
            }
        }
    }

    /// Binomial weights 1 6 15 20 15 6 1 (sum 64) along rows, then columns; exact integer rounding at the end.
    static func blur(_ image: UnsafePointer<UInt8>, height: Int, width: Int, into out: UnsafeMutablePointer<UInt8>) {
        let w = [1, 6, 15, 20, 15, 6, 1]
        var rowPass = [Int](repeating: 0, count: height * width)  // scaled by 64
        for i in 0 ..< height {
            for j in 0 ..< width {
                var s = 0
                for k in -3 ... 3 { s += w[k + 3] * Int(image[i * width + min(max(j + k, 0), width - 1)]) }
                rowPass[i * width + j] = s
            }
        }
        for i in 0 ..< height {
            for j in 0 ..< width {
                var s = 0
                for k in -3 ... 3 { s += w[k + 3] * rowPass[min(max(i + k, 0), height - 1) * width + j] }
                out[i * width + j] = UInt8((s + 2048) / 4096)
            }
        }
    }
}
