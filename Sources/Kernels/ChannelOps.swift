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
    public static func backward(batch: Int, channelsA: Int, channelsB: Int, spatial: Int, dY: UnsafePointer<Float>,
                                dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        let sizeA = channelsA * spatial, sizeB = channelsB * spatial
        for n in 0..<batch {
            let src = dY + n * (sizeA + sizeB)
            if let dA {
                let d = dA + n * sizeA
                for i in 0..<sizeA { d[i] += src[i] }
            }
            if let dB {
                let d = dB + n * sizeB
                let s = src + sizeA
                for i in 0..<sizeB { d[i] += s[i] }
            }
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

/// Sum of x (count) in Double lanes: several independent accumulators, so the loop neither serialises on one
/// add's latency nor loses digits (GroupNorm's mean of values far from 0 needs them).
@inline(__always)
func rowSum(_ x: UnsafePointer<Float>, _ count: Int) -> Double {
    var acc0 = DVec(repeating: 0), acc1 = DVec(repeating: 0)
    var i = 0
    while i + 16 <= count {
        acc0 += loadWide(x + i)
        acc1 += loadWide(x + i + 8)
        i += 16
    }
    var total = (acc0 + acc1).sum()
    while i < count { total += Double(x[i]); i += 1 }
    return total
}
