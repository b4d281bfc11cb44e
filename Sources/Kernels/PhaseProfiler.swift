// Where a training step spends its time, by phase (conv forward, conv backward, GEMM, norms, ...), for the
// `bench` command. Kernels mark their phase with enter/leave; time is charged EXCLUSIVELY to the innermost phase
// (a conv's GEMMs count as GEMM, its im2col as conv), so the phases add up to the step. Off by default: then each
// mark costs one load and a branch.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Phase: Int, CaseIterable, Sendable, CustomStringConvertible {
    case other, convForward, convBackward, gemm, norms, attention, elementwise, optimizer, allReduce

    public var description: String {
        switch self {
        case .other: return "other"
        case .convForward: return "conv_forward"
        case .convBackward: return "conv_backward"
        case .gemm: return "gemm"
        case .norms: return "norms"
        case .attention: return "attention"
        case .elementwise: return "elementwise"
        case .optimizer: return "optimizer"
        case .allReduce: return "all_reduce"
        }
    }
}

/// The process's phase clock. One training step runs on one thread at a time; the profiler is only switched on
/// by the benchmark, which does exactly that.
public final class PhaseProfiler: @unchecked Sendable {
    // @unchecked: mutated only by the thread running the step (the kernels are single-threaded callers of BLAS).
    public static let shared = PhaseProfiler()

    public private(set) var enabled = false
    private var seconds = [Double](repeating: 0, count: Phase.allCases.count)
    private var current = Phase.other
    private var last: UInt64 = 0
    /// Floating-point operations issued to sgemm (2 m n k per call) since the last reset.
    public private(set) var gemmFlops = 0.0
    /// The part of gemmFlops issued by convolutions.
    public private(set) var convGemmFlops = 0.0
    /// What the convolutions would cost computed directly (2 Cout Cin K^2 Ho Wo N per pass), whatever algorithm
    /// ran: with the other GEMMs, the FLOP count PyTorch's counter reports for the same step.
    public private(set) var convDirectFlops = 0.0

    private init() {}

    @inline(__always) static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Starts (or stops) accounting; either way the totals restart from zero.
    public func setEnabled(_ on: Bool) {
        enabled = on
        reset()
    }

    public func reset() {
        for i in seconds.indices { seconds[i] = 0 }
        gemmFlops = 0; convGemmFlops = 0; convDirectFlops = 0
        current = .other
        last = Self.nanoseconds()
    }

    /// Charges the time since the last switch to the running phase and makes `phase` the running one.
    /// Returns the phase to give back to `leave`.
    @inline(__always)
    public func enter(_ phase: Phase) -> Phase {
        guard enabled else { return phase }
        let previous = current
        switchTo(phase)
        return previous
    }

    @inline(__always)
    public func leave(_ previous: Phase) {
        guard enabled else { return }
        switchTo(previous)
    }

    @inline(__always)
    func addGemm(m: Int, n: Int, k: Int, caller: Phase) {
        guard enabled else { return }
        let flops = 2 * Double(m) * Double(n) * Double(k)
        gemmFlops += flops
        if caller == .convForward || caller == .convBackward { convGemmFlops += flops }
    }

    @inline(__always)
    func addConvPass(_ s: ConvShape) {
        guard enabled else { return }
        convDirectFlops += 2 * Double(s.batch * s.outChannels * s.outHeight * s.outWidth) * Double(s.patchSize)
    }

    /// The step's FLOPs counted as a direct implementation would do them (convolutions at 2 Cout Cin K^2 Ho Wo
    /// per sample and pass, every other GEMM as issued).
    public var nominalFlops: Double { gemmFlops - convGemmFlops + convDirectFlops }

    private func switchTo(_ phase: Phase) {
        let now = Self.nanoseconds()
        seconds[current.rawValue] += Double(now &- last) * 1e-9
        last = now
        current = phase
    }

    /// Seconds per phase since the last reset (the running phase charged up to now).
    public func snapshot() -> [Phase: Double] {
        if enabled { switchTo(current) }
        var out: [Phase: Double] = [:]
        for p in Phase.allCases { out[p] = seconds[p.rawValue] }
        return out
    }
}

extension PhaseProfiler {
    /// Runs body as `phase` (for callers outside the kernels: the optimizer, the all-reduce).
    @inline(__always)
    public func measure<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
        let previous = enter(phase)
        defer { leave(previous) }
        return try body()
    }
}
