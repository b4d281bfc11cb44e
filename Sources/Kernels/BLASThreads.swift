// How many OpenBLAS threads each process should run. Several MPI ranks on one node each starting one BLAS thread
// per core oversubscribe the cores (every rank's threads fight for all of them), which costs far more than the
// threads gain on this model's small GEMMs; so each rank gets its share of the cores it may run on, and an
// explicit OPENBLAS_NUM_THREADS (or GOTO_NUM_THREADS / OMP_NUM_THREADS) always wins.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension BLASRuntime {
    /// Variables OpenBLAS reads its thread count from at load time, in its order of precedence.
    public static let threadVariables = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"]

    /// Variables MPI launchers set to the number of ranks they started on this node: Open MPI, MPICH/Hydra,
    /// MVAPICH, and Slurm's srun (whose value may read "2(x3)": 2 tasks on each of 3 nodes).
    public static let localRankVariables = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                            "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_TASKS_PER_NODE"]

    /// Ranks on this node according to the launcher's environment, 1 when not launched by one.
    public static func ranksOnThisNode(environment: [String: String]) -> Int {
        for name in localRankVariables {
            guard let value = environment[name] else { continue }
            let digits = value.prefix { $0.isNumber }
            if let n = Int(digits), n > 0 { return n }
        }
        return 1
    }

    /// Cores online on this node.
    public static var onlineCores: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Cores this process may run on (its CPU affinity mask, which a launcher's binding narrows; all online
    /// cores where that is unknown).
    public static var allowedCores: Int {
        #if os(Linux)
        // sched_getaffinity is not visible from Swift's Glibc module; the kernel prints the same mask here.
        if let file = fopen("/proc/self/status", "r") {
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 4096)
            while fgets(&line, Int32(line.count), file) != nil {
                let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                guard text.hasPrefix("Cpus_allowed:") else { continue }
                let n = text.dropFirst("Cpus_allowed:".count).reduce(0) { sum, ch in
                    sum + (ch.hexDigitValue?.nonzeroBitCount ?? 0)
                }
                if n > 0 { return n }
            }
        }
        #endif
        return onlineCores
    }

    /// The thread count a rank should use: its share of the node's cores, and never more than the cores it is
    /// bound to (bound to one core by `mpirun --bind-to core`, it gets 1; bound to a socket that it shares with
    /// another rank, half the node's share still applies).
    public static func recommendedThreads(onlineCores: Int, allowedCores: Int, ranksOnThisNode: Int) -> Int {
        max(1, min(allowedCores, onlineCores / max(1, ranksOnThisNode)))
    }

    /// Where the thread count came from.
    public enum ThreadSource: Sendable, Equatable, CustomStringConvertible {
        case environment(String)  // the variable that set it
        case shareOfCores(online: Int, allowed: Int, ranks: Int)
        case explicit

        public var description: String {
            switch self {
            case .environment(let name): return "from \(name)"
            case .shareOfCores(let online, let allowed, let ranks):
                return "\(online) cores / \(ranks) rank(s) on this node, \(allowed) allowed to this process"
            case .explicit: return "set explicitly"
            }
        }
    }

    /// Sets OpenBLAS's thread count for a process that is one of `ranksOnThisNode` ranks on its node, unless the
    /// environment already chose one (OpenBLAS read it when it loaded; it is left alone). Call it once, early,
    /// before the first GEMM. Returns the thread count in force and why.
    @discardableResult
    public static func configureThreads(ranksOnThisNode: Int,
                                        environment: [String: String]) -> (threads: Int, source: ThreadSource) {
        for name in threadVariables {
            if let value = environment[name], let n = Int(value), n > 0 { return (threads, .environment(name)) }
        }
        let online = onlineCores, allowed = allowedCores
        setThreads(recommendedThreads(onlineCores: online, allowedCores: allowed, ranksOnThisNode: ranksOnThisNode))
        return (threads, .shareOfCores(online: online, allowed: allowed, ranks: max(1, ranksOnThisNode)))
    }
}
