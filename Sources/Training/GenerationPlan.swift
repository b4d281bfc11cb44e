// How one generation call is spread over the machine: the samples are cut into network passes by the count and
// the batch size alone, each rank takes a contiguous run of passes, and its worker threads pull those passes one
// at a time. The cut never depends on the number of ranks or threads because the network's arithmetic depends on
// the batch a sample shares: OpenBLAS picks its sgemm kernels by matrix size, so a column of C can come out a few
// ulp different when the GEMM has another number of columns (measured on 0.3.21: a 32x288 by 288xN product gives
// other bits for N = 49 or 100 than for N = 4096). Within a fixed pass nothing else varies: sample i's noise
// depends only on (seed, i), and OpenBLAS's threads split M and N, never K. So any number of threads and ranks
// gives the one-thread run's images, bit for bit.
import Foundation
import Kernels

public enum GenerationPlan {
    /// The batch size `sample`, `eval` and the previews use unless told: per sample about as fast as 64 on the
    /// mnist config (measured: BENCHMARKS.md, "Sampling"), and small enough that a few hundred samples make
    /// enough passes for every thread of a small machine, and for the threads to even out under load.
    public static let defaultBatchSize = 16

    /// The passes over `count` samples: ceil(count / batchSize) of them, equal to within one sample (200 samples
    /// at batch 64: 4 passes of 50), so no pass is a small remainder.
    public static func passes(count: Int, batchSize: Int) -> [Range<Int>] {
        precondition(batchSize >= 1 && count >= 0, "count \(count), batchSize \(batchSize)")
        let k = (count + batchSize - 1) / batchSize
        return (0..<k).map { j in (j * count / k)..<((j + 1) * count / k) }
    }

    /// Rank r's passes: a contiguous run of them (equal in number to within one), so its samples are one slice
    /// of the result and the gather moves one block per rank.
    public static func passes(count: Int, batchSize: Int, rank: Int, ranks: Int) -> ArraySlice<Range<Int>> {
        precondition(ranks >= 1 && (0..<ranks).contains(rank), "rank \(rank) of \(ranks)")
        let all = passes(count: count, batchSize: batchSize)
        return all[(rank * all.count / ranks)..<((rank + 1) * all.count / ranks)]
    }

    /// The samples rank r computes (empty when it has no pass).
    public static func share(count: Int, batchSize: Int, rank: Int, ranks: Int) -> Range<Int> {
        let mine = passes(count: count, batchSize: batchSize, rank: rank, ranks: ranks)
        guard let first = mine.first, let last = mine.last else {
            let at = rank * count / ranks
            return at..<at
        }
        return first.lowerBound..<last.upperBound
    }

    /// The worker threads a process runs when not told: the BLAS thread count in force, which is this process's
    /// share of the cores (BLASRuntime.configureThreads) or what OPENBLAS_NUM_THREADS says.
    public static var defaultThreads: Int { max(1, BLASRuntime.threads) }
}

/// Runs a body on `count` threads (the caller's thread is worker 0) and returns when every one has finished.
enum WorkerThreads {
    /// Secondary threads get Linux's usual main-thread stack rather than Foundation's 512 KiB default.
    static let stackBytes = 8 << 20

    static func run(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard count > 1 else { body(0); return }
        let finished = DispatchSemaphore(value: 0)
        for w in 1..<count {
            let thread = Thread {
                body(w)
                finished.signal()
            }
            thread.stackSize = stackBytes
            thread.start()
        }
        body(0)
        for _ in 1..<count { finished.wait() }
    }
}

/// The passes of one call, handed out one at a time to whichever worker asks first (a worker slowed by another
/// process on its core simply takes fewer), and the progress count.
final class PassQueue: @unchecked Sendable {
    // @unchecked: every mutable field is read and written under `lock`.
    private let lock = NSLock()
    private let passes: [Range<Int>]
    private var next = 0, done = 0
    private let total: Int
    private let progress: ((Int, Int) -> Void)?

    init(_ passes: [Range<Int>], progress: ((Int, Int) -> Void)?) {
        self.passes = passes; self.progress = progress
        total = passes.reduce(0) { $0 + $1.count }
    }

    func take() -> Range<Int>? {
        lock.lock(); defer { lock.unlock() }
        guard next < passes.count else { return nil }
        next += 1
        return passes[next - 1]
    }

    /// Reports `count` more samples done (under the lock, so reports arrive in order and never interleave).
    func finished(_ count: Int) {
        lock.lock(); defer { lock.unlock() }
        done += count
        progress?(done, total)
    }
}
