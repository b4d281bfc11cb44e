// A tiny deterministic PRNG (SplitMix64) and a hash-combine built on it: shuffles and augmentations must be pure
// functions of (seed, epoch, index) so that every rank and every resumed run agree.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.finalize(state)
    }

    /// Uniform in 0..<bound without modulo bias (Lemire's multiply-and-reject).
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        while true {
            let (high, low) = bound.multipliedFullWidth(by: next())
            if low >= (0 &- bound) % bound { return high }
        }
    }

    /// A well-mixed 64-bit key from several words (order matters).
    public static func mix(_ words: UInt64...) -> UInt64 {
        var h: UInt64 = 0x6A09_E667_F3BC_C908
        for w in words { h = finalize(h ^ finalize(w &+ 0x9E37_79B9_7F4A_7C15)) }
        return h
    }

    private static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
