// The data-parallel communication interface the trainer is written against, and its error type.
// Two implementations: MPICommunicator (under mpirun) and LocalCommunicator (one process, no MPI at all).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reductions over small Double arrays (loss sums, grad-norm pieces, non-finite flags, weight checksums).
public enum ReduceOp: Sendable, CustomStringConvertible {
    case sum, max, min

    public var description: String {
        switch self {
        case .sum: return "sum"
        case .max: return "max"
        case .min: return "min"
        }
    }
}

/// Collective operations over the ranks of one job. Every rank must make the same calls in the same order with
/// the same counts (as with any collective); a rank that skips one leaves the others waiting.
public protocol Communicator: AnyObject {
    /// This process's index in the job, 0 ..< size.
    var rank: Int { get }
    /// Number of processes in the job.
    var size: Int { get }
    /// Rank 0: the one that logs, writes checkpoints and samples.
    var isRoot: Bool { get }
    /// "mpi" or "local", for logs.
    var backendName: String { get }

    /// Replaces buffer[i] on every rank by the mean over ranks of buffer[i].
    /// buffer: (count,) Float, e.g. the flat gradient arena.
    func allReduceAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Replaces values[i] on every rank by the reduction over ranks of values[i]. All ranks must pass the same count.
    func allReduce(_ values: inout [Double], op: ReduceOp) throws
    /// Reduce-scatter for ZeRO-1: afterwards this rank's slice `slice(rank)` of buffer holds the mean over ranks of
    /// that slice; the rest of buffer is unspecified. The slices tile 0..<count in rank order. buffer: (count,) Float.
    func reduceScatterAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws
    /// All-gather in place: afterwards every rank's buffer holds every rank's slice `slice(r)`. buffer: (count,).
    func allGather(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws
    /// Copies byteCount bytes of root's buffer into every other rank's buffer.
    /// buffer: (byteCount,) bytes.
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws
    /// Returns on each rank only after every rank has entered the barrier.
    func barrier() throws
    /// Ends the whole job (every rank) with the given exit code after printing message to stderr.
    func abort(code: Int32, message: String) -> Never
    /// Shuts the backend down; call once at the end of a successful run. Later calls do nothing.
    func finalize()
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// The reduce-scatter as a full all-reduce (what any communicator can do; MPICommunicator moves only slices).
    public func reduceScatterAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws {
        try allReduceAverage(buffer, count: count)
    }

    /// The all-gather as one broadcast per rank's slice (MPICommunicator uses one MPI_Allgatherv).
    public func allGather(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws {
        guard size > 1 else { return }
        for r in 0..<size {
            let s = slice(r)
            try broadcast(buffer + s.lowerBound, count: s.count, root: r)
        }
    }

    /// Broadcast of a Float buffer from root. floats: (count,) Float.
    public func broadcast(_ floats: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        precondition(count >= 0, "broadcast: negative count \(count)")
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        precondition(!overflow, "broadcast: \(count) floats overflow a byte count")
        try broadcast(UnsafeMutableRawPointer(floats), byteCount: byteCount, root: root)
    }

    /// Convenience for scalars: the reduction over ranks of one value.
    public func allReduce(_ value: Double, op: ReduceOp) throws -> Double {
        var values = [value]
        try allReduce(&values, op: op)
        return values[0]
    }
}

/// A failed collective. For MPI failures `code` is the MPI error code and `message` MPI's own error string.
public struct CommunicatorError: Error, CustomStringConvertible {
    /// The call that failed, e.g. "MPI_Allreduce".
    public let call: String
    /// Rank of the process that saw the failure (-1 when MPI could not tell us yet).
    public let rank: Int
    /// The MPI error code.
    public let code: Int32
    /// MPI_Error_string's text, or our own explanation.
    public let message: String

    public init(call: String, rank: Int, code: Int32, message: String) {
        self.call = call
        self.rank = rank
        self.code = code
        self.message = message
    }

    public var description: String {
        let who = rank >= 0 ? "rank \(rank)" : "unknown rank"
        return "\(call) failed on \(who) with MPI error \(code): \(message). "
            + "Check that every rank reached the same collective with the same count, and see mpirun's output "
            + "for the rank that died first."
    }
}

/// Splits count elements into consecutive pieces of at most limit elements, because MPI counts are Int32.
/// body receives (offset, length) with length in 1 ... limit; nothing is called for count == 0.
func forEachChunk(count: Int, limit: Int, _ body: (_ offset: Int, _ length: Int32) throws -> Void) rethrows {
    precondition(count >= 0, "forEachChunk: negative count \(count)")
    precondition(limit > 0 && limit <= Int(Int32.max), "forEachChunk: limit \(limit) not in 1...Int32.max")
    var offset = 0
    while offset < count {
        let length = Swift.min(limit, count - offset)
        try body(offset, Int32(length))
        offset += length
    }
}

/// Writes text to file descriptor 2 directly: the C `stderr` global is shared mutable state to Swift 6, and an
/// unbuffered write cannot be lost when the process is killed right after (as abort does).
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written <= 0 { return }
        offset += written
    }
}
