// The hidden `controlnet comm-check` subcommand: exercises every Communicator operation across the job with
// checks that can fail, measures all-reduce bandwidth, and can kill one rank mid-run to prove that the job then
// fails fast instead of hanging. Used by scripts/mpi-tests/*.sh and cluster/local-cluster.sh.
import ArgumentParser
import Distributed
import Training
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct CommCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm-check",
        abstract: "Check the communicator across all ranks and measure all-reduce bandwidth.",
        shouldDisplay: false)

    enum DeathKind: String, ExpressibleByArgument, CaseIterable {
        case kill  // raise(SIGKILL): no clean-up at all, like the OOM killer or a lost node
        case exit  // exit(3) without MPI_Finalize, like a crash that unwinds
        case abort  // Communicator.abort (MPI_Abort), what the trainer does on an error it cannot recover from
    }

    @Option(help: "Floats in the averaged buffer (default: the MNIST ControlNet's trainable parameter count).")
    var count: Int = 695_664

    @Option(help: "All-reduces timed for the bandwidth figure.")
    var repeats: Int = 20

    @Option(help: "After the checks, keep all-reducing (and checking) for this many seconds.")
    var loopSeconds: Double = 0

    @Option(help: "This rank dies during the loop, to test that the job fails fast instead of hanging.")
    var dieRank: Int?

    @Option(help: "Seconds after the start of the loop at which --die-rank dies.")
    var dieAfterSeconds: Double = 2

    @Option(help: "How --die-rank dies: kill (SIGKILL), exit (exit(3) without finalising) or abort (MPI_Abort).")
    var dieHow: DeathKind = .kill

    @Option(help: "This rank stops joining the loop's collectives (it sleeps, alive) to test the watchdog.")
    var sleepRank: Int?

    @Option(help: "Seconds after the start of the loop at which --sleep-rank falls asleep.")
    var sleepAfterSeconds: Double = 2

    @Option(help: "How long --sleep-rank sleeps.")
    var sleepSeconds: Double = 10

    @OptionGroup var watchdogFlags: WatchdogFlags

    func validate() throws {
        // NaN passes no `>=` test and infinity never ends a loop: every duration is finite and at most a day.
        do {
            try OptionBounds.count("--count", count, OptionBounds.commCount)
            try OptionBounds.count("--repeats", repeats, OptionBounds.commRepeats)
            try OptionBounds.number("--loop-seconds", loopSeconds, OptionBounds.seconds)
            try OptionBounds.number("--die-after-seconds", dieAfterSeconds, OptionBounds.seconds)
            try OptionBounds.number("--sleep-after-seconds", sleepAfterSeconds, OptionBounds.seconds)
            try OptionBounds.number("--sleep-seconds", sleepSeconds, OptionBounds.seconds)
        } catch { throw ValidationError("\(error)") }
        // The checks hold four buffers of --count floats at once (broadcast, root's copy, average, expected).
        let need = 16 * Double(count), available = MemoryPlan.availableBytes
        if need > available {
            throw ValidationError("--count: \(count) floats need \(OptionBounds.bytes(need)) in four buffers; this process may use \(OptionBounds.gigabytes(available)). Use a smaller --count")
        }
        if let dieRank, dieRank < 0 { throw ValidationError("--die-rank must be a rank (>= 0), got \(dieRank)") }
        if let sleepRank, sleepRank < 0 { throw ValidationError("--sleep-rank must be a rank (>= 0), got \(sleepRank)") }
    }

    func run() throws {
        let base = try Communicators.makeDefault()
        let comm: any Communicator
        var check = Checker(rank: base.rank)
        let report: Report
        do {
            comm = try CollectiveWatch.wrap(base, stallWarning: watchdogFlags.stallWarning,
                                            collectiveTimeout: watchdogFlags.collectiveTimeout,
                                            advice: "Raise --collective-timeout if the network is just this slow")
            report = try runChecks(comm, &check)
        } catch let error as CommunicatorError {
            // Leaving now without aborting could leave the other ranks waiting in a collective for ever.
            base.abort(code: 2, message: "comm-check: \(error)")
        }
        comm.finalize()
        if report.failingRanks > 0 || !check.failures.isEmpty {
            if comm.isRoot {
                standardError("comm-check FAILED: \(report.failingRanks) of \(comm.size) ranks saw wrong results "
                    + "(each printed its own failures above)\n")
            }
            throw ExitCode.failure
        }
        if comm.isRoot { print(report.line) }
    }

    struct Report {
        var failingRanks = 0
        var line = ""
    }

    private func runChecks(_ comm: any Communicator, _ check: inout Checker) throws -> Report {
        let rank = comm.rank, size = comm.size
        if let dieRank, dieRank >= size {
            check.fail("--die-rank \(dieRank) is not a rank of this \(size)-process job")
        }

        // Rank and size: every rank must agree on both, and ranks must be exactly 0 ..< size.
        check.expect(try comm.allReduce(1, op: .sum) == Double(size), "sum of 1 over ranks is not the size \(size)")
        check.expect(try comm.allReduce(Double(rank), op: .sum) == Double(size * (size - 1) / 2),
                     "ranks do not sum to 0 + 1 + ... + \(size - 1)")
        check.expect(try comm.allReduce(Double(rank), op: .max) == Double(size - 1), "largest rank is not size - 1")
        check.expect(try comm.allReduce(Double(rank), op: .min) == 0, "smallest rank is not 0")
        check.expect(comm.isRoot == (rank == 0), "isRoot disagrees with rank \(rank)")

        // Element-wise reductions of small arrays, with an infinity standing in for a non-finite flag.
        let mine: [Double] = [Double(rank), -Double(rank), 0.5, rank == size - 1 ? .infinity : 0]
        let n = Double(size), last = Double(size - 1), triangle = Double(size * (size - 1) / 2)
        for (op, expected) in [(ReduceOp.sum, [triangle, -triangle, 0.5 * n, .infinity]),
                               (.max, [last, 0, 0.5, .infinity]),
                               (.min, [0, -last, 0.5, size == 1 ? .infinity : 0])] {
            var values = mine
            try comm.allReduce(&values, op: op)
            check.expect(values == expected, "all-reduce \(op) gave \(values), expected \(expected)")
        }

        let hosts = try gatherHostNames(comm)

        // Broadcasts from the first and the last rank, raw bytes and floats.
        for root in Set([0, size - 1]).sorted() {
            var bytes = (0 ..< 1000).map { UInt8(truncatingIfNeeded: $0 * 7 + rank * 31) }
            try bytes.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, byteCount: $0.count, root: root) }
            check.expect(bytes == (0 ..< 1000).map { UInt8(truncatingIfNeeded: $0 * 7 + root * 31) },
                         "broadcast of 1000 bytes from root \(root) did not deliver root's bytes")
            var floats = [Float](repeating: 0, count: count)
            fill(&floats, rank: rank)
            try floats.withUnsafeMutableBufferPointer { try comm.broadcast($0.baseAddress!, count: $0.count, root: root) }
            var rootFloats = [Float](repeating: 0, count: count)
            fill(&rootFloats, rank: root)
            check.expect(floats == rootFloats, "broadcast of \(count) floats from root \(root) did not deliver root's values")
        }

        // The average, first in one call and then split into many calls of a prime length (the path that
        // counts past Int32.max take), to check the chunking against MPI itself.
        var buffer = [Float](repeating: 0, count: count)
        let expected = expectedMean(count: count, size: size)
        fill(&buffer, rank: rank)
        try buffer.withUnsafeMutableBufferPointer { try comm.allReduceAverage($0.baseAddress!, count: $0.count) }
        check.expectClose(buffer, expected, "average of \(count) floats")
        if comm is MPICommunicator {
            let chunked = try MPICommunicator(maxElementsPerCall: 65_521)
            fill(&buffer, rank: rank)
            try buffer.withUnsafeMutableBufferPointer { try chunked.allReduceAverage($0.baseAddress!, count: $0.count) }
            check.expectClose(buffer, expected, "average of \(count) floats in chunks of 65521")
            var bytes = [UInt8](repeating: UInt8(rank & 0xff), count: 200_003)
            try bytes.withUnsafeMutableBytes { try chunked.broadcast($0.baseAddress!, byteCount: $0.count, root: 0) }
            check.expect(bytes.allSatisfy { $0 == 0 }, "chunked broadcast of 200003 bytes from root 0 went wrong")
            // MPI failures must come back as errors naming the call, the rank and MPI's own text.
            if let error = chunked.provokeArgumentError() {
                let text = error.description
                check.expect(text.contains("MPI_Allreduce") && text.contains("rank \(rank)")
                                 && text.uppercased().contains("COUNT"),
                             "MPI's error for an invalid count is not reported usefully: \(text)")
            } else {
                check.fail("MPI accepted an all-reduce with count -1; run with --mca mpi_param_check 1")
            }
        }

        try comm.barrier()

        // Bandwidth: the slowest rank's time is the job's time.
        fill(&buffer, rank: rank)
        try comm.barrier()
        let start = ContinuousClock.now
        for _ in 0 ..< repeats {
            try buffer.withUnsafeMutableBufferPointer { try comm.allReduceAverage($0.baseAddress!, count: $0.count) }
        }
        let seconds = try comm.allReduce((ContinuousClock.now - start).seconds, op: .max)
        // Averaging identical values again must keep them (exact for power-of-two sizes, near for others).
        check.expectClose(buffer, expected, "average after \(repeats) repeated all-reduces")

        let loop = try loopUntilStopped(comm, &buffer, expected, &check)
        let failingRanks = Int(try comm.allReduce(check.failures.isEmpty ? 0 : 1, op: .sum))

        let bytes = Double(count * MemoryLayout<Float>.stride)
        let perCall = seconds / Double(repeats)
        let algbw = bytes / perCall / 1e9
        let busbw = algbw * 2 * Double(size - 1) / Double(size)  // traffic per rank of a ring all-reduce
        var line = "comm-check ok: world \(size), backend \(comm.backendName), hosts [\(hosts.joined(separator: ", "))]"
        if size > 1 {
            line += ", allreduce-average of \(count) floats x \(repeats): \(format(perCall * 1e3)) ms per call"
            line += ", algbw \(format(algbw)) GB/s, busbw \(format(busbw)) GB/s"
        } else {
            line += ", no communication in a 1-rank job"
        }
        if loop.iterations > 0 { line += ", loop \(loop.iterations) checked all-reduces in \(format(loop.seconds)) s" }
        return Report(failingRanks: failingRanks, line: line)
    }

    /// Every rank's host name, in rank order: one small broadcast per rank, so it needs no gather operation.
    private func gatherHostNames(_ comm: any Communicator) throws -> [String] {
        let width = 64
        var mine = [UInt8](repeating: 0, count: width)
        _ = mine.withUnsafeMutableBufferPointer { gethostname(UnsafeMutableRawPointer($0.baseAddress!)
            .assumingMemoryBound(to: CChar.self), width - 1) }
        var names: [String] = []
        for root in 0 ..< comm.size {
            var slot = root == comm.rank ? mine : [UInt8](repeating: 0, count: width)
            try slot.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, byteCount: width, root: root) }
            names.append(String(decoding: slot.prefix { $0 != 0 }, as: UTF8.self))
        }
        return names
    }

    /// Averages and re-checks until rank 0 says stop (one decision for all, so no rank is left in a collective);
    /// --die-rank dies in here while the others wait in the next all-reduce.
    private func loopUntilStopped(_ comm: any Communicator, _ buffer: inout [Float], _ expected: [Float],
                                  _ check: inout Checker) throws -> (iterations: Int, seconds: Double) {
        let dies = dieRank == comm.rank
        let someoneDies = dieRank.map { $0 < comm.size } ?? false
        var slept = sleepRank != comm.rank
        // With a death requested and no loop length, loop "for ever": the test is that the job ends anyway.
        let duration = someoneDies && loopSeconds == 0 ? dieAfterSeconds + 600 : loopSeconds
        if duration == 0 { return (0, 0) }
        let start = ContinuousClock.now
        var iterations = 0
        while true {
            let elapsed = (ContinuousClock.now - start).seconds
            if dies && elapsed >= dieAfterSeconds {
                standardError("comm-check: rank \(comm.rank) dies now (\(dieHow)) as asked by --die-rank\n")
                switch dieHow {
                case .kill: raise(SIGKILL)
                case .exit: exitWithoutFinalize(3)
                case .abort: comm.abort(code: 4, message: "comm-check --die-how abort")
                }
            }
            comm.markStep(iterations + 1)  // the watchdog's reports call loop iterations steps
            if !slept && elapsed >= sleepAfterSeconds {
                standardError("comm-check: rank \(comm.rank) sleeps \(sleepSeconds) s at loop iteration "
                    + "\(iterations + 1) as asked by --sleep-rank\n")
                slept = true
                usleep(UInt32(min(sleepSeconds, 4000) * 1e6))
            }
            fill(&buffer, rank: comm.rank)
            try buffer.withUnsafeMutableBufferPointer { try comm.allReduceAverage($0.baseAddress!, count: $0.count) }
            check.expectClose(buffer, expected, "average in loop iteration \(iterations)")
            iterations += 1
            let stop = comm.isRoot && elapsed >= duration ? 1.0 : 0.0
            if try comm.allReduce(stop, op: .max) > 0 { return (iterations, (ContinuousClock.now - start).seconds) }
        }
    }
}

/// Rank r's contribution at index i: exact in Float, distinct per rank and per position, with a non-linear
/// dependence on the rank so that a wrong rank set or a missing contribution shows.
private func contribution(rank: Int, index: Int) -> Float {
    Float(index % 4093) * 0.5 - 1000 + Float(rank) * 1000 - Float(rank * rank) * 0.125
}

/// buffer: (count,) filled with this rank's contributions.
private func fill(_ buffer: inout [Float], rank: Int) {
    for i in buffer.indices { buffer[i] = contribution(rank: rank, index: i) }
}

/// The mean over ranks 0 ..< size at each index, computed in Double: (count,).
private func expectedMean(count: Int, size: Int) -> [Float] {
    (0 ..< count).map { i in
        var sum = 0.0
        for r in 0 ..< size { sum += Double(contribution(rank: r, index: i)) }
        return Float(sum / Double(size))
    }
}

/// Collects failed checks; each rank reports its own, so the lines say which rank saw what.
private struct Checker {
    let rank: Int
    var failures: [String] = []

    mutating func fail(_ message: String) {
        failures.append(message)
        standardError("comm-check: rank \(rank): FAILED: \(message)\n")
    }

    mutating func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fail(message()) }
    }

    /// got, want: (count,). Relative tolerance 1e-6, so only rounding of the final division is allowed.
    mutating func expectClose(_ got: [Float], _ want: [Float], _ what: String) {
        var worst = 0.0, worstIndex = -1
        for i in got.indices {
            let error = abs(Double(got[i]) - Double(want[i])) / max(1, abs(Double(want[i])))
            if !(error <= worst) { worst = error; worstIndex = i }  // `!(<=)` also catches NaN
        }
        if worstIndex >= 0 && !(worst <= 1e-6) {
            fail("\(what): index \(worstIndex) is \(got[worstIndex]), expected \(want[worstIndex]) "
                + "(relative error \(worst))")
        }
    }
}

/// C exit, which ParsableCommand's own `exit(withError:)` hides inside the command type.
private func exitWithoutFinalize(_ code: Int32) -> Never {
    exit(code)
}

private func standardError(_ text: String) {
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress!, $0.count) }
}

private func format(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
