// Channel-axis plumbing of the UNet: the decoder's skip concatenation and the ResBlock's time-embedding add.

public enum ChannelConcat {
    /// a (N, Ca, S), b (N, Cb, S) -> y (N, Ca + Cb, S), S = H*W.
    public static func forward(batch: Int, channelsA: Int, channelsB: Int, spatial: Int,
                               a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        let sizeA = channelsA * spatial, sizeB = channelsB * spatial
        for n in 0..<batch {
            let dst = y + n * (sizeA + sizeB)
            dst.update(from: a + n * sizeA, count: sizeA)
            (dst + sizeA).update(from: b + n * sizeB, count: sizeB)
        }
    }

    /// dY (N, Ca + Cb, S) split: dA (N, Ca, S) += its first Ca channels, dB (N, Cb, S) += the rest; nil skips.
    /// With `overwrite`, dA and dB are set instead (a gradient's only contribution needs no zero fill first).
    public static func backward(batch: Int, channelsA: Int, channelsB: Int, spatial: Int, dY: UnsafePointer<Float>,
                                dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                                overwrite: Bool = false) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        let sizeA = channelsA * spatial, sizeB = channelsB * spatial
        @inline(__always) func put(_ src: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ count: Int) {
            if overwrite { d.update(from: src, count: count) } else { for i in 0..<count { d[i] += src[i] } }
        }
        for n in 0..<batch {
            let src = dY + n * (sizeA + sizeB)
            if let dA { put(src, dA + n * sizeA, sizeA) }
            if let dB { put(src + sizeA, dB + n * sizeB, sizeB) }
        }
    }
}

public enum ChannelBroadcastAdd {
    /// x (N, C, S) += v (N, C) broadcast over S, in place.
    public static func forward(batch: Int, channels: Int, spatial: Int, x: UnsafeMutablePointer<Float>,
                               v: UnsafePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        for p in 0..<batch * channels {
            let row = x + p * spatial
            let value = v[p]
            for s in 0..<spatial { row[s] += value }
        }
    }

    /// dV (N, C) += sum over S of dY (N, C, S).
    public static func backward(batch: Int, channels: Int, spatial: Int, dY: UnsafePointer<Float>,
                                dV: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        for p in 0..<batch * channels {
            dV[p] += Float(rowSum(dY + p * spatial, spatial))
        }
    }
}

/// Sum of x (count): Float lanes over blocks of 256 elements (16 additions per lane, so a block sum is good to a
/// few ulps), the block sums added in Double. As careful as summing everything in Double lanes (GroupNorm's mean of
/// values far from 0 needs that) at the cost of Float additions.
@inline(__always)
func rowSum(_ x: UnsafePointer<Float>, _ count: Int) -> Double {
    var total = 0.0
    var i = 0
    while i + 256 <= count {
        var acc0 = Vec(repeating: 0), acc1 = Vec(repeating: 0)
        for j in stride(from: i, to: i + 256, by: 2 * vecWidth) {
            acc0 += loadVec(x + j)
            acc1 += loadVec(x + j + vecWidth)
        }
        total += Double((acc0 + acc1).sum())
        i += 256
    }
    var acc = Vec(repeating: 0)
    while i + vecWidth <= count { acc += loadVec(x + i); i += vecWidth }
    total += Double(acc.sum())
    while i < count { total += Double(x[i]); i += 1 }
    return total
}
