// Binary morphology for the scribble hint: Zhang-Suen thinning (a one-pixel-wide, 8-connected skeleton) and
// 3x3 dilation. Pixels outside the image count as background.
enum Morphology {
    /// bits: (H, W) of 0/1, thinned in place.
    static func thinZhangSuen(_ bits: inout [UInt8], height: Int, width: Int) {
        func at(_ i: Int, _ j: Int) -> Int {
            i < 0 || j < 0 || i >= height || j >= width ? 0 : Int(bits[i * width + j])
        }
        var toClear: [Int] = []
        var changed = true
        while changed {
            changed = false
            for pass in 0 ..< 2 {
                toClear.removeAll(keepingCapacity: true)
                for i in 0 ..< height {
                    for j in 0 ..< width where bits[i * width + j] == 1 {
                        // Neighbours P2..P9, clockwise from north.
                        let p = [at(i - 1, j), at(i - 1, j + 1), at(i, j + 1), at(i + 1, j + 1),
                                 at(i + 1, j), at(i + 1, j - 1), at(i, j - 1), at(i - 1, j - 1)]
                        let b = p.reduce(0, +)
                        guard b >= 2 && b <= 6 else { continue }
                        var a = 0  // 0 -> 1 transitions around the ring: 1 means a simple boundary point
                        for k in 0 ..< 8 where p[k] == 0 && p[(k + 1) % 8] == 1 { a += 1 }
                        guard a == 1 else { continue }
                        let (n, e, s, w) = (p[0], p[2], p[4], p[6])
                        let remove = pass == 0 ? (n * e * s == 0 && e * s * w == 0) : (n * e * w == 0 && n * s * w == 0)
                        if remove { toClear.append(i * width + j) }
                    }
                }
                for k in toClear { bits[k] = 0 }
                if !toClear.isEmpty { changed = true }
            }
        }
    }

    /// bits: (H, W) of 0/1; out: (H, W) of 0/255, set where any pixel of the 3x3 neighbourhood is 1.
    static func dilate3x3(_ bits: [UInt8], height: Int, width: Int, into out: UnsafeMutablePointer<UInt8>) {
        for i in 0 ..< height {
            for j in 0 ..< width {
                var on = false
                for di in -1 ... 1 where !on {
                    let y = i + di
                    guard y >= 0 && y < height else { continue }
                    for dj in -1 ... 1 {
                        let x = j + dj
                        if x >= 0 && x < width && bits[y * width + x] == 1 { on = true; break }
                    }
                }
                out[i * width + j] = on ? 255 : 0
            }
        }
    }
}
