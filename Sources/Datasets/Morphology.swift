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
                        // Neighbours P2..P9, clockwise from north, as bits 0...7 (no per-pixel allocation: this
                        // runs for every ink pixel of every image when a dataset's scribbles are cached).
                        let ring = at(i - 1, j) | at(i - 1, j + 1) << 1 | at(i, j + 1) << 2 | at(i + 1, j + 1) << 3
                            | at(i + 1, j) << 4 | at(i + 1, j - 1) << 5 | at(i, j - 1) << 6 | at(i - 1, j - 1) << 7
                        let b = ring.nonzeroBitCount
                        guard b >= 2 && b <= 6 else { continue }
                        // 0 -> 1 transitions around the ring: exactly one means a simple boundary point.
                        let rotated = (ring >> 1) | ((ring & 1) << 7)
                        guard (~ring & rotated & 0xFF).nonzeroBitCount == 1 else { continue }
                        let (n, e, s, w) = (ring & 1, ring >> 2 & 1, ring >> 4 & 1, ring >> 6 & 1)
                        let remove = pass == 0 ? (n & e & s == 0 && e & s & w == 0) : (n & e & w == 0 && n & s & w == 0)
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
