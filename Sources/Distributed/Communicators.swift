// Picks the communicator for this process: MPI when started by an MPI launcher, otherwise Local.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Communicators {
    /// Environment variables set by MPI launchers for every process they start: Open MPI's mpirun
    /// (OMPI_COMM_WORLD_SIZE), PMIx launchers such as srun --mpi=pmix (PMIX_RANK), and PMI-1/2 launchers such as
    /// MPICH's hydra or srun --mpi=pmi2 (PMI_SIZE).
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

    /// True when an MPI launcher started this process. Reads only the environment; no MPI call.
    public static var launchedByMPI: Bool {
        launcherVariables.contains { getenv($0) != nil }
    }

    /// This process's rank as its launcher set it, read before MPI starts (nil when no launcher or no rank
    /// variable): used to keep non-zero ranks' reports of a bad command line short.
    public static var launcherRank: Int? {
        for name in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"] {
            if let value = getenv(name), let rank = Int(String(cString: value)) { return rank }
        }
        return nil
    }

    /// The MPI communicator under an MPI launcher, else the Local one (which never touches MPI, so a plain run or
    /// a debugger session needs no mpirun). Under MPI the ranks first agree that they run the same `command`.
    public static func makeDefault(command: String = commandName) throws -> any Communicator {
        if launchedByMPI {
            let comm = try MPICommunicator()
            try agreeOnCommand(command, comm: comm)
            return comm
        }
        return LocalCommunicator()
    }

    /// This process's subcommand (train-base, sample...): the first argument.
    public static var commandName: String { CommandLine.arguments.dropFirst().first ?? "" }

    /// Refuses a job whose ranks run different subcommands (mpirun's MPMD form, `-np 1 controlnet train-base ...
    /// : -np 1 controlnet sample ...`): each would wait in collectives the other never calls, for ever. Every
    /// command that makes a communicator calls this first, with the same two collectives, so it cannot itself
    /// hang on a mismatch. On a mismatch every rank finalizes and throws, naming rank 0's command and its own.
    public static func agreeOnCommand(_ command: String, comm: any Communicator) throws {
        guard comm.size > 1 else { return }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325   // FNV-1a, 52 bits: exact in a Double
        for b in command.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let mine = Double(h & ((1 << 52) - 1))
        var range = [mine, -mine]
        try comm.allReduce(&range, op: .max)
        guard range[0] != -range[1] else { return }
        var name = [UInt8](repeating: 0, count: 64)
        if comm.rank == 0 { for (i, b) in command.utf8.prefix(name.count).enumerated() { name[i] = b } }
        try name.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, byteCount: $0.count, root: 0) }
        let rootCommand = String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
        let rank = comm.rank, size = comm.size
        comm.finalize()
        throw LaunchMismatch(rank: rank, size: size, command: command, rootCommand: rootCommand)
    }
}

/// The ranks of one job were started with different subcommands.
public struct LaunchMismatch: Error, CustomStringConvertible {
    public let rank: Int, size: Int
    public let command: String, rootCommand: String
    public init(rank: Int, size: Int, command: String, rootCommand: String) {
        self.rank = rank; self.size = size; self.command = command; self.rootCommand = rootCommand
    }
    public var description: String {
        let which = rank == 0 ? "this rank runs '\(command)', another rank runs another"
            : command == rootCommand ? "this rank runs '\(command)' as rank 0 does, another rank does not"
            : "rank 0 runs '\(rootCommand)', this rank runs '\(command)'"
        return "[rank \(rank)] the \(size) ranks of this job run different subcommands (\(which)); an MPMD launch (mpirun ... : ...) must start every rank with the same subcommand and options, e.g. mpirun -np \(size) controlnet \(rootCommand) ..."
    }
}
