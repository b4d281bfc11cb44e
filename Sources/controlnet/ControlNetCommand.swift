// The `controlnet` executable: the root command and its subcommands.
import ArgumentParser
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
        BLASRuntime.ensureFastKernels()
        do {
            try KernelISA.selectFromEnvironment(ProcessInfo.processInfo.environment)
            try BF16Kernel.selectFromEnvironment(ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(64)  // EX_USAGE, as for bad options
        }
        Self.main(nil)
    }
}
