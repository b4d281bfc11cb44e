// The project's one family of random numbers, all counter-based: every draw is a pure function of (seed, purpose,
// keys such as step, epoch, sample index), so N ranks, `--simulate-ranks N` and a resumed run draw exactly the same
// numbers without carrying generator state around.
//
// SplitMix64 is the mixing primitive: it shuffles epochs, keys per-sample augmentations, and seeds RandomStream,
// the xoshiro256** stream that supplies noise, timesteps, dropout and initialisation.
import Foundation

/// SplitMix64: a tiny deterministic generator and a hash-combine built on the same finaliser.
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

    /// The SplitMix64 output function (a bijective 64-bit mixer).
    @inline(__always) public static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast and statistically solid.
public struct RandomStream: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    private var spare: Float?

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    /// A stream keyed by several integers (e.g. seed, purpose, step, sample).
    public init(_ keys: UInt64...) {
        var h: UInt64 = 0x243F_6A88_85A3_08D3
        for k in keys { h = (h ^ k) &* 0x100_0000_01B3 &+ 0x9E37_79B9_7F4A_7C15; h ^= h >> 29 }
        self.init(seed: h)
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform integer in 0..<bound.
    public mutating func int(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next() % UInt64(bound))   // bias < 2^-50 for the bounds used here
    }

    /// Standard normal (Box-Muller, both halves used).
    public mutating func normal() -> Float {
        if let s = spare { spare = nil; return s }
        var u = uniform()
        while u <= .leastNormalMagnitude { u = uniform() }
        let v = uniform()
        let r = (-2 * log(u)).squareRoot()
        spare = Float(r * sin(2 * .pi * v))
        return Float(r * cos(2 * .pi * v))
    }

    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { p[i] = normal() }
    }
}

/// What a random draw is for, so streams for different purposes never coincide.
public enum RandomPurpose: UInt64, Sendable {
    case timestep = 1, noise = 2, promptDropout = 3, hint = 4, initialization = 5, sampling = 6
}
