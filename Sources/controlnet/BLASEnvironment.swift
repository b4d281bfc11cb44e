// Making OpenBLAS use the fast kernels for this CPU. OpenBLAS picks its kernel set ("core") once, when the library
// loads; 0.3.21 does not know recent CPUs such as AVX-512 EPYCs and silently falls back to Prescott kernels, 3-4x
// slower. The only fix from inside the process is to set OPENBLAS_CORETYPE and exec ourselves again, which must
// happen before anything else (in particular before MPI_Init, so it also works under mpirun: exec keeps the pid).
import CBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum BLASEnvironment {
    static let coreTypeVariable = "OPENBLAS_CORETYPE"
    /// Set to the core OpenBLAS detected when this program chose OPENBLAS_CORETYPE and re-executed itself: it stops
    /// a second re-exec (if OpenBLAS ignored the variable) and lets `info` report the choice.
    static let markerVariable = "CONTROLNET_OPENBLAS_DETECTED_CORE"

    /// Who chose the kernels this process runs.
    enum Choice {
        /// OpenBLAS's own detection, left alone because it is right for this CPU (or nothing better is known).
        case openBLAS
        /// This program set OPENBLAS_CORETYPE because OpenBLAS picked `detected`, a core older than the CPU.
        case automatic(detected: String)
        /// OPENBLAS_CORETYPE came from the user's environment and is respected.
        case user
    }

    /// Called first thing in main(): re-executes this process once with OPENBLAS_CORETYPE set when OpenBLAS picked
    /// kernels older than the CPU supports. Returns normally when nothing needs doing or the exec fails.
    static func ensureFastKernels() {
        let environment = ProcessInfo.processInfo.environment
        guard (environment[coreTypeVariable] ?? "").isEmpty, environment[markerVariable] == nil else { return }
        let detected = coreName
        guard let coreType = recommendedCoreType(detected: detected, cpuFlags: cpuFlags()) else { return }

        setenv(coreTypeVariable, coreType, 1)
        setenv(markerVariable, detected, 1)
        fflush(nil)  // exec discards unwritten stdio buffers
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)

        // Only reached when exec failed: run with the slow kernels rather than not at all, and say how to fix it.
        let reason = String(cString: strerror(errno))
        unsetenv(coreTypeVariable)
        unsetenv(markerVariable)
        FileHandle.standardError.write(Data(("warning: OpenBLAS picked \(detected) kernels for this CPU and "
            + "re-running with \(coreTypeVariable)=\(coreType) failed (\(reason)); export "
            + "\(coreTypeVariable)=\(coreType) for 3-4x faster matrix products\n").utf8))
    }

    static var choice: Choice {
        let environment = ProcessInfo.processInfo.environment
        guard let value = environment[coreTypeVariable], !value.isEmpty else { return .openBLAS }
        if let detected = environment[markerVariable] { return .automatic(detected: detected) }
        return .user
    }

    /// The OPENBLAS_CORETYPE a process on this machine should start with to get the kernels this one uses, or nil
    /// when OpenBLAS's own detection is right. For processes that cannot re-exec themselves, such as xctest.
    static var coreTypeForOtherProcesses: String? {
        switch choice {
        case .openBLAS: return nil
        case .automatic, .user: return ProcessInfo.processInfo.environment[coreTypeVariable]
        }
    }

    /// The kernel set OpenBLAS is using, e.g. "SkylakeX" or "Prescott".
    static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// OpenBLAS's build description (version, DYNAMIC_ARCH, thread limit).
    static var configuration: String {
        guard let config = openblas_get_config() else { return "unknown" }
        return String(cString: config).trimmingCharacters(in: .whitespaces)
    }

    /// The environment variable that set OpenBLAS's thread count, in the order OpenBLAS reads them, if any.
    static var threadCountSource: (name: String, value: String)? {
        let environment = ProcessInfo.processInfo.environment
        for name in ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"] {
            if let value = environment[name], let n = Int(value), n > 0 { return (name, value) }
        }
        return nil
    }

    /// The CPU feature flags of the first processor in /proc/cpuinfo (empty where that file does not exist).
    static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> Set<String> {
        guard let cpuinfo else { return [] }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// The newest OpenBLAS 0.3.21 core this CPU can run, with its generation (see `generation(of:)`).
    static func bestCoreType(cpuFlags flags: Set<String>) -> (name: String, generation: Int)? {
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return ("SkylakeX", 3) }
        if flags.isSuperset(of: ["avx2", "fma"]) { return ("Haswell", 2) }
        if flags.contains("avx") { return ("Sandybridge", 1) }
        return nil
    }

    /// The OPENBLAS_CORETYPE to use instead of `detected`, or nil when `detected` is as good as the CPU allows or
    /// is a core this table does not know (then OpenBLAS's choice is trusted).
    static func recommendedCoreType(detected: String, cpuFlags: Set<String>) -> String? {
        guard let current = generation(of: detected), let best = bestCoreType(cpuFlags: cpuFlags),
              current < best.generation else { return nil }
        return best.name
    }

    /// The widest vector ISA a core's kernels use: 0 SSE only, 1 AVX, 2 AVX2+FMA, 3 AVX-512.
    static func generation(of core: String) -> Int? {
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
}
