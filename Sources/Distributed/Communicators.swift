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

    /// The MPI communicator under an MPI launcher, else the Local one (which never touches MPI, so a plain run or
    /// a debugger session needs no mpirun).
    public static func makeDefault() throws -> any Communicator {
        if launchedByMPI { return try MPICommunicator() }
        return LocalCommunicator()
    }
}
