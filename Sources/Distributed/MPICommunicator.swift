// The MPI communicator over MPI_COMM_WORLD (through the CMPI shim). MPI is initialised once per process
// (MPI_Init_thread, FUNNELED) and errors come back as codes (MPI_ERRORS_RETURN) that we turn into Swift errors.
import CMPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide MPI start-up. A static let is initialised exactly once (thread-safely) by the runtime, which is
/// what MPI_Init demands: it may be called at most once per process, and never again after MPI_Finalize.
enum MPIRuntime {
    struct World: @unchecked Sendable {  // MPI_Comm is a C pointer; MPI_COMM_WORLD never changes after init.
        let comm: MPI_Comm?  // optional only because C pointers import so; never nil after MPI_Init
        let rank: Int
        let size: Int
    }

    static let world: Result<World, CommunicatorError> = start()

    private static func start() -> Result<World, CommunicatorError> {
        var initialized: Int32 = 0
        if let error = check(MPI_Initialized(&initialized), call: "MPI_Initialized", rank: -1) { return .failure(error) }
        if initialized == 0 {
            var provided: Int32 = 0
            let required = Int32(MPI_THREAD_FUNNELED)
            // Before MPI_Init the default handler is ERRORS_ARE_FATAL, so a failure here usually ends the process
            // with MPI's own message; we still check the code for implementations that return.
            if let error = check(MPI_Init_thread(nil, nil, required, &provided), call: "MPI_Init_thread", rank: -1) {
                return .failure(error)
            }
            if provided < required {
                return .failure(CommunicatorError(
                    call: "MPI_Init_thread", rank: -1, code: 0,
                    message: "the MPI library provides thread level \(provided), below MPI_THREAD_FUNNELED "
                        + "(\(required)); use an MPI built with thread support"))
            }
        }
        let comm = cmpi_comm_world()
        if let error = check(MPI_Comm_set_errhandler(comm, cmpi_errors_return()),
                             call: "MPI_Comm_set_errhandler", rank: -1) {
            return .failure(error)
        }
        var rank: Int32 = 0
        var size: Int32 = 0
        if let error = check(MPI_Comm_rank(comm, &rank), call: "MPI_Comm_rank", rank: -1) { return .failure(error) }
        if let error = check(MPI_Comm_size(comm, &size), call: "MPI_Comm_size", rank: Int(rank)) {
            return .failure(error)
        }
        return .success(World(comm: comm, rank: Int(rank), size: Int(size)))
    }

    /// nil for MPI_SUCCESS, otherwise the error naming the call, the rank and MPI's error string.
    static func check(_ code: Int32, call: String, rank: Int) -> CommunicatorError? {
        if code == cmpi_success() { return nil }
        return CommunicatorError(call: call, rank: rank, code: code, message: errorString(code))
    }

    static func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &text, &length) == cmpi_success() else { return "unknown MPI error" }
        let bytes = text.prefix(Int(length)).map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Collectives over MPI_COMM_WORLD. Each call is one blocking MPI collective (chunked only past Int32.max).
/// Thread use must be FUNNELED: call it from one thread (the trainer's main loop). It holds only immutable
/// handles, so it is @unchecked Sendable for storage in Sendable values, not for concurrent calls.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var backendName: String { "mpi" }
    /// Largest element count per MPI call; MPI counts are Int32. Smaller values exist to exercise chunking.
    public let maxElementsPerCall: Int
    private let comm: MPI_Comm?

    /// Initialises MPI on first use in the process. Throws if MPI cannot start (e.g. not launched by mpirun
    /// and no singleton support).
    public init(maxElementsPerCall: Int = Int(Int32.max)) throws {
        precondition(maxElementsPerCall > 0 && maxElementsPerCall <= Int(Int32.max),
                     "maxElementsPerCall \(maxElementsPerCall) not in 1...Int32.max")
        let world = try MPIRuntime.world.get()
        var finalized: Int32 = 0
        _ = MPI_Finalized(&finalized)
        if finalized != 0 {
            throw CommunicatorError(
                call: "MPICommunicator.init", rank: world.rank, code: 0,
                message: "MPI was already finalised in this process and cannot be restarted; create every "
                    + "communicator before calling finalize()")
        }
        self.rank = world.rank
        self.size = world.size
        self.comm = world.comm
        self.maxElementsPerCall = maxElementsPerCall
    }

    /// call is an autoclosure so that the description is only built when something failed.
    private func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        if code != cmpi_success() {
            throw CommunicatorError(call: call(), rank: rank, code: code, message: MPIRuntime.errorString(code))
        }
    }

    /// One in-place MPI_SUM all-reduce, then a division by size. buffer: (count,) Float.
    public func allReduceAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        precondition(count >= 0, "allReduceAverage: negative count \(count)")
        try forEachChunk(count: count, limit: maxElementsPerCall) { offset, length in
            try check(MPI_Allreduce(cmpi_in_place(), buffer + offset, length, cmpi_float(), cmpi_sum(), comm),
                      "MPI_Allreduce(average of \(count) floats)")
        }
        if size == 1 { return }
        // Division rather than multiplication by 1/size: sum/3 is correctly rounded, sum*(1/3) can be an ulp off.
        let divisor = Float(size)
        for i in 0 ..< count { buffer[i] /= divisor }
    }

    /// MPI_Reduce_scatter over the rank slices (through a slice-sized receive buffer: MPI's in-place form would
    /// put the result at the start of the buffer), then a division by size.
    public func reduceScatterAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws {
        precondition(count >= 0 && count <= Int(Int32.max), "reduceScatterAverage: \(count) floats do not fit one MPI call")
        let slices = (0..<size).map(slice)
        precondition(slices.first?.lowerBound == 0 && slices.last?.upperBound == count, "slices must tile 0..<count")
        let counts = slices.map { Int32($0.count) }
        let mine = slices[rank]
        let received = UnsafeMutablePointer<Float>.allocate(capacity: max(1, mine.count))
        defer { received.deallocate() }
        try check(MPI_Reduce_scatter(buffer, received, counts, cmpi_float(), cmpi_sum(), comm),
                  "MPI_Reduce_scatter(\(count) floats in \(size) slices)")
        let divisor = Float(size)
        for i in 0..<mine.count { buffer[mine.lowerBound + i] = received[i] / divisor }
    }

    public func allGather(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws {
        precondition(count >= 0 && count <= Int(Int32.max), "allGather: \(count) floats do not fit one MPI call")
        let slices = (0..<size).map(slice)
        let counts = slices.map { Int32($0.count) }, displacements = slices.map { Int32($0.lowerBound) }
        try check(MPI_Allgatherv(cmpi_in_place(), 0, cmpi_float(), buffer, counts, displacements, cmpi_float(), comm),
                  "MPI_Allgatherv(\(count) floats in \(size) slices)")
    }

    public func allReduce(_ values: inout [Double], op: ReduceOp) throws {
        let mpiOp: MPI_Op
        switch op {
        case .sum: mpiOp = cmpi_sum()
        case .max: mpiOp = cmpi_max()
        case .min: mpiOp = cmpi_min()
        }
        let count = values.count
        try values.withUnsafeMutableBufferPointer { values in
            guard let base = values.baseAddress else { return }
            try forEachChunk(count: count, limit: maxElementsPerCall) { offset, length in
                try check(MPI_Allreduce(cmpi_in_place(), base + offset, length, cmpi_double(), mpiOp, comm),
                          "MPI_Allreduce(\(op) of \(count) doubles)")
            }
        }
    }

    /// buffer: (byteCount,) bytes.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {
        precondition(byteCount >= 0, "broadcast: negative byteCount \(byteCount)")
        precondition(root >= 0 && root < size, "broadcast: root \(root) is not a rank of a \(size)-process job")
        try forEachChunk(count: byteCount, limit: maxElementsPerCall) { offset, length in
            try check(MPI_Bcast(buffer + offset, length, cmpi_byte(), Int32(root), comm),
                      "MPI_Bcast(\(byteCount) bytes from root \(root))")
        }
    }

    public func barrier() throws {
        try check(MPI_Barrier(comm), "MPI_Barrier")
    }

    public func abort(code: Int32, message: String) -> Never {
        writeToStandardError("controlnet: rank \(rank) of \(size) aborting the job (code \(code)): \(message)\n")
        _ = MPI_Abort(comm, code)
        // MPI_Abort should not return; if it does, at least this rank must not carry on.
        exit(code)
    }

    /// Proves that failures come back as Swift errors rather than killing the job: an all-reduce with a negative
    /// count, which MPI rejects during argument checking on each rank without communicating. Returns the error
    /// (nil would mean MPI accepted it, i.e. argument checking is off: mpi_param_check=0).
    public func provokeArgumentError() -> CommunicatorError? {
        var value: Float = 0
        do {
            try check(MPI_Allreduce(cmpi_in_place(), &value, -1, cmpi_float(), cmpi_sum(), comm),
                      "MPI_Allreduce(deliberately invalid count -1)")
            return nil
        } catch let error as CommunicatorError {
            return error
        } catch {
            preconditionFailure("check throws only CommunicatorError, got \(error)")
        }
    }

    public func finalize() {
        var finalized: Int32 = 0
        guard MPI_Finalized(&finalized) == cmpi_success(), finalized == 0 else { return }
        _ = MPI_Finalize()
    }
}
