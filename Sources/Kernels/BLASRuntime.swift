// Everything this program knows and decides about OpenBLAS at run time, in one place: which kernel set ("core") it
// loaded and how to get a better one, how many threads each process runs, and its build description.
//
// Kernels: OpenBLAS picks its core once, when the library loads; 0.3.21 does not know recent CPUs such as AVX-512
// EPYCs and falls back to Prescott kernels, 3-4x slower. The only fix from inside the process is to set
// OPENBLAS_CORETYPE and exec ourselves again, before anything else (in particular before MPI_Init, so it also works
// under mpirun: exec keeps the pid).
//
// Threads: several MPI ranks on one node each starting one BLAS thread per core oversubscribe the cores, which
// costs far more than threads gain on this model's small GEMMs; so each rank gets its share of the cores it may
// run on, and an explicit OPENBLAS_NUM_THREADS (or GOTO_NUM_THREADS / OMP_NUM_THREADS) always wins.
import CBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum BLASRuntime {
    // MARK: the loaded library

    /// The kernel set OpenBLAS loaded, e.g. "SkylakeX" or "Haswell" (set by OPENBLAS_CORETYPE or detected).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// OpenBLAS's build description (version, DYNAMIC_ARCH, thread limit).
    public static var configuration: String {
        guard let config = openblas_get_config() else { return "unknown" }
        return String(cString: config).trimmingCharacters(in: .whitespaces)
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) {
        precondition(n >= 1, "OpenBLAS thread count must be >= 1")
        openblas_set_num_threads(Int32(n))
    }

    // MARK: kernel set (OPENBLAS_CORETYPE)

    public static let coreTypeVariable = "OPENBLAS_CORETYPE"
    /// Set to the core OpenBLAS detected when this program chose OPENBLAS_CORETYPE and re-executed itself: it stops
    /// a second re-exec (if OpenBLAS ignored the variable) and lets `info` report the choice.
    public static let detectedCoreMarker = "CONTROLNET_OPENBLAS_DETECTED_CORE"

    /// Who chose the kernels this process runs.
    public enum CoreChoice: Sendable {
        /// OpenBLAS's own detection, left alone because it is right for this CPU (or nothing better is known).
        case openBLAS
        /// This program set OPENBLAS_CORETYPE because OpenBLAS picked `detected`, a core older than the CPU.
        case automatic(detected: String)
        /// OPENBLAS_CORETYPE came from the user's environment and is respected.
        case user
    }

    /// Called first thing in main(): re-executes this process once with OPENBLAS_CORETYPE set when OpenBLAS picked
    /// kernels older than the CPU supports. Returns normally when nothing needs doing or the exec fails.
    /// `beforeExec` runs just before the re-exec (a training process holds its stop signals there), and
    /// `execFailed` when it did not happen.
    public static func ensureFastKernels(beforeExec: () -> Void = {}, execFailed: () -> Void = {}) {
        let environment = ProcessInfo.processInfo.environment
        guard (environment[coreTypeVariable] ?? "").isEmpty, environment[detectedCoreMarker] == nil else { return }
        let detected = coreName
        guard let coreType = recommendedCoreType(detected: detected, cpuFlags: cpuFlags()) else { return }

        setenv(coreTypeVariable, coreType, 1)
        setenv(detectedCoreMarker, detected, 1)
        fflush(nil)  // exec discards unwritten stdio buffers
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        beforeExec()
        execv("/proc/self/exe", &argv)

        // Only reached when exec failed: run with the slow kernels rather than not at all, and say how to fix it.
        let reason = String(cString: strerror(errno))
        execFailed()
        unsetenv(coreTypeVariable)
        unsetenv(detectedCoreMarker)
        Console.error("warning: OpenBLAS picked \(detected) kernels for this CPU and "
            + "re-running with \(coreTypeVariable)=\(coreType) failed (\(reason)); export "
            + "\(coreTypeVariable)=\(coreType) for 3-4x faster matrix products\n")
    }

    public static var coreChoice: CoreChoice {
        let environment = ProcessInfo.processInfo.environment
        guard let value = environment[coreTypeVariable], !value.isEmpty else { return .openBLAS }
        if let detected = environment[detectedCoreMarker] { return .automatic(detected: detected) }
        return .user
    }

    /// The OPENBLAS_CORETYPE a process on this machine should start with to get the kernels this one uses, or nil
    /// when OpenBLAS's own detection is right. For processes that cannot re-exec themselves, such as xctest.
    public static var coreTypeForOtherProcesses: String? {
        switch coreChoice {
        case .openBLAS: return nil
        case .automatic, .user: return ProcessInfo.processInfo.environment[coreTypeVariable]
        }
    }

    /// The CPU feature flags of the first processor in /proc/cpuinfo (empty where that file does not exist).
    public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
        -> Set<String> {
        guard let cpuinfo else { return [] }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// The newest OpenBLAS 0.3.21 core this CPU can run, with its generation (see `generation(of:)`).
    public static func bestCoreType(cpuFlags flags: Set<String>) -> (name: String, generation: Int)? {
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return ("SkylakeX", 3) }
        if flags.isSuperset(of: ["avx2", "fma"]) { return ("Haswell", 2) }
        if flags.contains("avx") { return ("Sandybridge", 1) }
        return nil
    }

    /// The OPENBLAS_CORETYPE to use instead of `detected`, or nil when `detected` is as good as the CPU allows or
    /// is a core this table does not know (then OpenBLAS's choice is trusted).
    public static func recommendedCoreType(detected: String, cpuFlags: Set<String>) -> String? {
        guard let current = generation(of: detected), let best = bestCoreType(cpuFlags: cpuFlags),
              current < best.generation else { return nil }
        return best.name
    }

    /// The widest vector ISA a core's kernels use: 0 SSE only, 1 AVX, 2 AVX2+FMA, 3 AVX-512.
    public static func generation(of core: String) -> Int? {
        switch core.lowercased() {
        case "katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington", "nehalem",
             "atom", "athlon", "opteron", "opteron(sse3)", "barcelona", "nano", "bobcat":
            return 0
        case "sandybridge", "bulldozer", "piledriver", "steamroller":
            return 1
        case "haswell", "zen", "excavator":
            return 2
        case "skylakex", "cooperlake", "sapphirerapids":
            return 3
        default:
            return nil
        }
    }

    // MARK: memory

    /// Bytes OpenBLAS 0.3.21 maps for its GEMM buffer, per thread that runs a GEMM (BUFFER_SIZE: 128 MiB for the
    /// x86-64 kernels), with some slack for its other allocations.
    public static let bufferBytesPerThread = 128 << 20

    /// Address space a command needs beyond OpenBLAS's buffers before its own memory check can speak.
    public static let headroomBytes = 128 << 20

    /// Makes OpenBLAS allocate its buffers now (a 1x1 sgemm) when the address-space limit leaves room for them, or
    /// returns why it cannot: OpenBLAS retries a failed buffer mmap forever, so a process under `ulimit -v`
    /// without room for it would hang at its first matrix product. Nothing to do without a limit.
    public static func reserveBuffers() -> String? {
        guard let limit = MemoryFootprint.addressSpaceLimit else { return nil }
        // Beyond the buffers, the threads every command starts (watchdog, heartbeat, workers: 8 MiB stacks) and
        // the smallest arenas need room; without it they would fail later as a trap in an allocation, not an error.
        let need = (threads + 1) * bufferBytesPerThread + headroomBytes
        let free = limit - MemoryFootprint.virtualBytes
        if free < need {
            let mb = { (b: Int) in "\(b >> 20) MB" }
            return "the address-space limit (ulimit -v) is \(mb(limit)) and \(mb(max(0, free))) of it is free, but OpenBLAS needs about \(mb(need - headroomBytes)) for its buffers (\(threads) thread(s)) and the program \(mb(headroomBytes)) more before any work; raise the limit (ulimit -v), or run fewer BLAS threads (OPENBLAS_NUM_THREADS=1)"
        }
        var a: Float = 1, b: Float = 1, c: Float = 0
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1)
        return nil
    }

    // MARK: threads

    /// Variables OpenBLAS reads its thread count from at load time, in its order of precedence.
    public static let threadVariables = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"]

    /// Variables MPI launchers set to the number of ranks they started on this node: Open MPI, MPICH/Hydra,
    /// MVAPICH, and Slurm's srun (whose value may read "2(x3)": 2 tasks on each of 3 nodes).
    public static let localRankVariables = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                            "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_TASKS_PER_NODE"]

    /// The environment variable that set OpenBLAS's thread count, in the order OpenBLAS reads them, if any.
    public static func threadCountVariable(environment: [String: String]) -> (name: String, value: String)? {
        for name in threadVariables {
            if let value = environment[name], let n = Int(value), n > 0 { return (name, value) }
        }
        return nil
    }

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
        if let (name, _) = threadCountVariable(environment: environment) { return (threads, .environment(name)) }
        let online = onlineCores, allowed = allowedCores
        setThreads(recommendedThreads(onlineCores: online, allowedCores: allowed, ranksOnThisNode: ranksOnThisNode))
        return (threads, .shareOfCores(online: online, allowed: allowed, ranks: max(1, ranksOnThisNode)))
    }

    /// configureThreads for this process as launched (its environment and launcher), or `explicit` threads.
    @discardableResult
    public static func configureThreadsForThisProcess(explicit: Int? = nil) -> (threads: Int, source: ThreadSource) {
        if let explicit {
            setThreads(explicit)
            return (threads, .explicit)
        }
        let environment = ProcessInfo.processInfo.environment
        return configureThreads(ranksOnThisNode: ranksOnThisNode(environment: environment), environment: environment)
    }
}

/// The process's address space as the kernel counts it against RLIMIT_AS (which `ulimit -v` sets).
public enum MemoryFootprint {
    /// RLIMIT_AS, or nil when unlimited.
    public static var addressSpaceLimit: Int? {
        var r = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &r) == 0, r.rlim_cur != rlim_t.max else { return nil }
        return Int(clamping: r.rlim_cur)
    }

    /// VmSize of this process (/proc/self/status), 0 where unknown.
    public static var virtualBytes: Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmSize:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }
}
