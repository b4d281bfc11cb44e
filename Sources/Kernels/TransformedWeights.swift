// Winograd-transformed conv weights computed once and reused, for inference. A training forward transforms each
// conv's weights (U = G g G^T, kept as U^T (E, Cin, Cout)) on every call because the weights change every step;
// a sampling run calls the same frozen convs steps x passes times, and at small batches the transform was ~10% of
// its time (perf, mnist, batch 16). The cache holds U by weight address for as long as its owner guarantees the weights
// do not change (Generator: one `generate` call), and is shared by that call's worker threads. U is the very
// output of the same transform, so the convolution's result is bit-identical with or without it (in bf16 too: the
// key holds the precision, and bf16's U is the transform of the rounded weights, as the uncached forward computes).
import Foundation

public final class TransformedWeights: @unchecked Sendable {
    // @unchecked: `entries` is read and written under `lock`; an entry's memory is written once, before it is
    // published, and only read afterwards.
    private struct Key: Hashable {
        let weight: UInt
        let algorithm: ConvAlgorithm
        let outChannels: Int, inChannels: Int
        /// bf16 transforms the rounded weights (Winograd.transformWeights).
        let precision: Precision
    }
    private let lock = NSLock()
    private var entries: [Key: UnsafeMutablePointer<Float>] = [:]

    public init() {}

    deinit { for p in entries.values { p.deallocate() } }

    /// Floats held (for memory reports).
    public var count: Int {
        lock.lock(); defer { lock.unlock() }
        return entries.keys.reduce(0) { $0 + Winograd.transformedWeightCount($1.algorithm, $1.outChannels, $1.inChannels) }
    }

    /// U^T (E, Cin, Cout), the forward's layout, of `weight` (Cout, Cin, 3, 3) for conv `s` (a Winograd one),
    /// transformed on first use.
    func winograd(_ s: ConvShape, weight: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let key = Key(weight: UInt(bitPattern: weight), algorithm: s.algorithm, outChannels: s.outChannels,
                      inChannels: s.inChannels, precision: s.precision)
        lock.lock(); defer { lock.unlock() }
        if let u = entries[key] { return UnsafePointer(u) }
        let u = UnsafeMutablePointer<Float>.allocate(capacity: Winograd.transformedWeightCount(s.algorithm, s.outChannels, s.inChannels))
        Winograd.transformWeights(s, weight: weight, into: u)
        entries[key] = u
        return UnsafePointer(u)
    }
}
