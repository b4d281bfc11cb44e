// The one-process communicator: every collective is the identity. It makes no MPI call at all (not even
// MPI_Initialized), so the trainer runs under a debugger or in tests without mpirun.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// No mutable state at all, so sharing it across threads is safe.
public final class LocalCommunicator: Communicator, Sendable {
    public init() {}

    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var backendName: String { "local" }

    /// The mean over one rank is the value itself. buffer: (count,) Float.
    public func allReduceAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        precondition(count >= 0, "allReduceAverage: negative count \(count)")
    }

    public func allReduce(_ values: inout [Double], op: ReduceOp) throws {}

    /// buffer: (byteCount,) bytes; root must be 0, the only rank.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {
        precondition(byteCount >= 0, "broadcast: negative byteCount \(byteCount)")
        precondition(root == 0, "broadcast: root \(root) is not a rank of a 1-process job")
    }

    public func barrier() throws {}

    public func abort(code: Int32, message: String) -> Never {
        writeToStandardError("controlnet: aborting (local, code \(code)): \(message)\n")
        exit(code)
    }

    public func finalize() {}
}
