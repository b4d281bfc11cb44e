// The `controlnet` executable: the root command and its subcommands.
import ArgumentParser
import CEarlySignals
import Distributed
import Foundation
import Kernels

@main
struct ControlNetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controlnet",
        abstract: "Train diffusion ControlNets on CPUs and clusters, data-parallel over MPI.",
        subcommands: [TrainBase.self, TrainControlNet.self, Sample.self, Eval.self, MakeDataset.self, Export.self, DiffWeights.self,
                      Info.self, Bench.self, BenchSgemm.self, CommCheck.self])

    /// Runs before argument parsing: OpenBLAS picks its kernels when the library loads, so a wrong pick can
    /// only be fixed by re-executing this process with OPENBLAS_CORETYPE set (see BLASRuntime).
    /// CONTROLNET_KERNEL_ISA and CONTROLNET_BF16_KERNEL are checked here too, so a bad value stops every command
    /// before any work.
    static func main() {
        let command = CommandLine.arguments.dropFirst().first ?? ""
        let training = ["train-base", "train-controlnet"].contains(command)
        // A stop request may come at any moment, even before the options are parsed (a scheduler's TERM at start):
        // training commands take it as a request to stop, never as death. Until here CEarlySignals counted it;
        // across the re-exec it is held pending.
        BLASRuntime.ensureFastKernels(beforeExec: { if training { ces_hold_for_exec() } },
                                      execFailed: { if training { ces_unblock_stop_signals() } })
        if training { StopSignals.install() }
        // A file-size limit (ulimit -f) makes writes fail with EFBIG, which every writer reports, instead of the
        // default SIGXFSZ that kills the process mid-write.
        signal(SIGXFSZ, SIG_IGN)
        do {
            try KernelISA.selectFromEnvironment(ProcessInfo.processInfo.environment)
            try BF16Kernel.selectFromEnvironment(ProcessInfo.processInfo.environment)
        } catch {
            Console.error("\(rankPrefix)error: \(error)\n")
            Foundation.exit(64)  // EX_USAGE, as for bad options
        }
        // Commands that multiply matrices need OpenBLAS's buffers, which it allocates on first use and, under an
        // address-space limit too small for them, retries forever: take them now, or say why not.
        if ["train-base", "train-controlnet", "sample", "eval", "bench", "bench-sgemm"].contains(command),
           let problem = BLASRuntime.reserveBuffers() {
            Console.error("\(rankPrefix)error: \(problem)\n")
            Foundation.exit(71)  // EX_OSERR
        }
        runReportingOnce()
    }

    /// "rank N: " on a non-zero rank under an MPI launcher, so a report that every rank makes says whose it is.
    static var rankPrefix: String {
        if let rank = Communicators.launcherRank, rank != 0 { return "rank \(rank): " }
        return ""
    }

    /// ArgumentParser's `main` with its error report made fit for mpirun. Every rank parses the same command line,
    /// so a bad option fails on all of them at once, and mpirun interleaves their stderr wherever a write ends:
    /// ArgumentParser's report, written in pieces, came out as `Error: --simulate-ranks is the single-process
    /// deError: --sibmulate-ranks ...`. Here each report is a single write; rank 0 gives the full message with its
    /// usage, and other ranks one line naming the rank (their error can differ: a path missing on one node).
    static func runReportingOnce() -> Never {
        do {
            var command = try parseAsRoot(nil)
            try command.run()
            Foundation.exit(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success {   // --help, --version: a request, not a failure
                let text = fullMessage(for: error)
                if !text.isEmpty { print(text) }
                Foundation.exit(code.rawValue)
            }
            // An ExitCode thrown after the command has said why has no message.
            if !rankPrefix.isEmpty {
                if let line = message(for: error).split(separator: "\n").first {
                    Console.error("\(rankPrefix)\(line)\n")
                }
            } else {
                let text = fullMessage(for: error)
                if !text.isEmpty { Console.error(text.hasSuffix("\n") ? text : text + "\n") }
            }
            Foundation.exit(code.rawValue)
        }
    }
}
