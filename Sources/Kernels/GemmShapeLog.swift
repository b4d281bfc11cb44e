// Which GEMM shapes a training step issues, how often and for how long (`controlnet bench --gemm-shapes`,
// `bench-sgemm --config`): the shapes the bf16 kernels were measured and tuned on (docs/bf16-kernels.md).
// Off by default: then Gemm.sgemm pays one load and a branch.

/// One distinct GEMM call shape: C (m, n) = op(A) (m, k) op(B) (k, n), and the phase that issued it.
public struct GemmShapeKey: Hashable, Sendable, Codable {
    public var transA, transB: Bool
    public var m, n, k: Int
    /// The innermost phase around the call ("conv_forward", "conv_backward", "attention", "other"...).
    public var caller: String
}

public struct GemmShapeStats: Sendable, Codable {
    public var shape: GemmShapeKey
    public var calls: Int
    public var seconds: Double
    public var gflop: Double { 2 * Double(shape.m) * Double(shape.n) * Double(shape.k) * Double(calls) / 1e9 }
}

public final class GemmShapeLog: @unchecked Sendable {
    // @unchecked: like PhaseProfiler, used only by the one thread running a step while the benchmark has it on.
    public static let shared = GemmShapeLog()

    public private(set) var enabled = false
    private var table: [GemmShapeKey: GemmShapeStats] = [:]

    private init() {}

    /// Starts (or stops) recording; either way the table restarts empty.
    public func setEnabled(_ on: Bool) {
        enabled = on
        table = [:]
    }

    func record(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, caller: Phase, seconds: Double) {
        let key = GemmShapeKey(transA: transA, transB: transB, m: m, n: n, k: k, caller: caller.description)
        table[key, default: GemmShapeStats(shape: key, calls: 0, seconds: 0)].calls += 1
        table[key]?.seconds += seconds
    }

    /// The recorded shapes, most time first.
    public var stats: [GemmShapeStats] { table.values.sorted { $0.seconds > $1.seconds } }
}
