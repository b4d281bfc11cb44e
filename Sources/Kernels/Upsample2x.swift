// Nearest-neighbour 2x upsampling (the decoder's Upsample before its conv), forward and backward.

public enum Upsample2x {
    /// x (N, C, H, W) -> y (N, C, 2H, 2W), y[.., 2i+a, 2j+b] = x[.., i, j]; height/width are the INPUT dims.
    public static func forward(batch: Int, channels: Int, height: Int, width: Int,
                               x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        let planes = batch * channels
        let w2 = 2 * width
        for p in 0..<planes {
            let src = x + p * height * width
            let dst = y + p * 4 * height * width
            for i in 0..<height {
                let row = dst + 2 * i * w2
                let s = src + i * width
                for j in 0..<width {
                    let v = s[j]
                    row[2 * j] = v
                    row[2 * j + 1] = v
                }
                // the odd output row repeats the even one
                (row + w2).update(from: row, count: w2)
            }
        }
    }

    /// dY (N, C, 2H, 2W) -> dX (N, C, H, W) += sum of each 2x2 block of dY (= with `overwrite`).
    public static func backward(batch: Int, channels: Int, height: Int, width: Int,
                                dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>, overwrite: Bool = false) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        let planes = batch * channels
        let w2 = 2 * width
        for p in 0..<planes {
            let src = dY + p * 4 * height * width
            let dst = dX + p * height * width
            for i in 0..<height {
                let r0 = src + 2 * i * w2
                let r1 = r0 + w2
                let d = dst + i * width
                if overwrite {
                    for j in 0..<width { d[j] = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]) }
                } else {
                    for j in 0..<width { d[j] += (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]) }
                }
            }
        }
    }
}
