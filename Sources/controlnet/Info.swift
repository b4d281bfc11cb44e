// `controlnet info`: how this build will run on this machine. Each section is one function so more can be added
// (e.g. model parameter counts for a configuration).
import ArgumentParser
import Foundation
import Kernels
import Model
import Training

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show the BLAS kernels and threads this machine uses; with --config, a model's sizes and costs.")

    @Flag(name: .customLong("blas-coretype"),
          help: ArgumentHelp("Print only the OPENBLAS_CORETYPE value processes here need for fast kernels, or nothing "
              + "when OpenBLAS's own choice is right.",
              discussion: "For scripts: processes that cannot re-execute themselves (e.g. `swift test`) need it in "
              + "their environment before OpenBLAS loads."))
    var blasCoretype = false

    @Option(help: "Also print parameter counts, FLOPs and all-reduce bytes of this model config (preset or JSON).")
    var config: String?

    func run() throws {
        if blasCoretype {
            if let value = BLASRuntime.coreTypeForOtherProcesses { print(value) }
            return
        }
        printBLAS()
        if let config { try printModel(config) }
    }

    private func printModel(_ name: String) throws {
        let c: ModelConfig
        do { c = try ModelConfig.named(name) } catch { throw ValidationError("\(error)") }
        let cost = ModelCost(config: c)
        func n(_ x: Int) -> String {
            let f = NumberFormatter(); f.numberStyle = .decimal; f.groupingSeparator = ","
            return f.string(from: NSNumber(value: x)) ?? "\(x)"
        }
        func g(_ x: Double) -> String { String(format: "%.3f GFLOP", x / 1e9) }
        print("model:         \(name) \(c.json)")
        print("parameters:    base UNet \(n(cost.unetParameters)) (frozen), ControlNet \(n(cost.controlNetParameters)) (trainable), of which \(cost.zeroConvCount) zero convs (incl. middle_out) \(n(cost.zeroConvParameters))")
        print("forward:       UNet \(g(cost.unetForward)) per sample, ControlNet \(g(cost.controlNetForward)) per sample")
        print("training step: ControlNet \(g(cost.controlNetTrainingStep)) per sample, base \(g(cost.baseTrainingStep)) per sample")
        let memory = MemoryPlan.trainingBytes(cost, mode: .controlnet, samples: 1)
        print(String(format: "memory:        ControlNet training about %.1f MB of weights and optimizer state, plus about %.2f MB of activations per sample per step (estimate)", memory.weights / 1_048_576, memory.activations / 1_048_576))
        print("all-reduce:    ControlNet training \(n(4 * cost.controlNetParameters)) bytes per step (one buffer of \(n(cost.controlNetParameters)) floats); base training \(n(4 * cost.unetParameters)) bytes")
    }

    private func printBLAS() {
        let core = BLASRuntime.coreName
        let variable = BLASRuntime.coreTypeVariable
        let how: String
        switch BLASRuntime.coreChoice {
        case .openBLAS:
            how = "OpenBLAS's own detection"
        case .automatic(let detected):
            how = "chosen automatically: OpenBLAS detected \(detected), older than this CPU, so \(variable) was set"
        case .user:
            how = "\(variable)=\(ProcessInfo.processInfo.environment[variable] ?? "") set by the user"
        }
        print("BLAS core:     \(core) (\(how))")
        if case .automatic(let detected) = BLASRuntime.coreChoice, core == detected {
            print("warning:       OpenBLAS ignored \(variable); matrix products run on the slow \(core) kernels")
        }

        let threads = BLASRuntime.threads
        let source = BLASRuntime.threadCountVariable(environment: ProcessInfo.processInfo.environment).map { "from \($0.name)=\($0.value)" }
            ?? "OpenBLAS default: one per available core; set OPENBLAS_NUM_THREADS to change"
        print("BLAS threads:  \(threads) (\(source))")
        print("BLAS build:    \(BLASRuntime.configuration)")

        let flags = BLASRuntime.cpuFlags()
        let isa = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma", "avx"].filter(flags.contains)
        let processors = ProcessInfo.processInfo.activeProcessorCount
        print("CPU:           \(processors) cores; \(isa.isEmpty ? "no AVX" : isa.joined(separator: " "))")
        let chosenBy = (ProcessInfo.processInfo.environment[KernelISA.environmentVariable] ?? "").isEmpty
            ? "the best this CPU runs" : "\(KernelISA.environmentVariable) set by the user"
        print("Kernels:       \(KernelISA.current) for GroupNorm, SiLU and exp (\(chosenBy); this CPU runs "
              + "\(KernelISA.supported.joined(separator: ", ")))")
        let bf16By = (ProcessInfo.processInfo.environment[BF16Kernel.environmentVariable] ?? "").isEmpty
            ? "measured faster" : "\(BF16Kernel.environmentVariable) set by the user"
        print("bf16:          --precision bf16 runs \(BF16Kernel.current) (\(bf16By); this CPU runs "
              + "\(BF16Kernel.supported.joined(separator: ", ")))")
        print("               \(BF16Kernel.pathDescription)")
        if !BF16Kernel.isNative { print("               so bf16 will not be faster than fp32 here (fp32 is the default)") }
    }
}
