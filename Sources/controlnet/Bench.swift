// `controlnet bench`: the speed of the real training step (Benchmarks' StepBenchmark runs the trainer's
// TrainingStep on synthetic data) as JSON; `--convs` times each conv algorithm at the config's conv shapes.
// `--torch DIR` then runs the PyTorch reference's torch_bench.py on the same work right after (rank 0).
import ArgumentParser
import Foundation
import Benchmarks
import Distributed
import Kernels
import Model
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps (base or ControlNet) on synthetic data and print JSON.")

    @Option(help: "base (the whole UNet trains) or controlnet (frozen UNet + trainable ControlNet).")
    var mode: TrainingMode = .controlnet
    @OptionGroup var model: ModelFlags
    @Option(name: .customLong("batch-size"), help: "Samples per rank per step.")
    var batchSize = 64
    @Option(help: "Timed steps (the median is reported).")
    var steps = 7
    @Option(help: "Untimed steps first (the activation arenas size themselves on the first step).")
    var warmup = 2
    @Option(help: "OpenBLAS threads per rank; default: OPENBLAS_NUM_THREADS, else this rank's share of the cores.")
    var threads: Int?
    @Flag(inversion: .prefixedNo, help: "Split the time by phase (costs two clock reads per kernel call).")
    var profile = true
    @Flag(help: "Instead of training steps, time each conv algorithm at the config's conv shapes (batch --batch-size).")
    var convs = false
    @Option(help: ArgumentHelp("Conv timing: samples per GEMM to try (default: the built-in rule).", visibility: .hidden))
    var convSamples: [Int] = []
    @Option(help: "1: shard the AdamW moments across the ranks (ZeRO-1), as train --zero 1 does.")
    var zero = 0
    @Option(help: "Directory of torch_bench.py: run the PyTorch reference on the same work afterwards (rank 0).")
    var torch: String?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0 (got \(warmup))") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        guard (0...1).contains(zero) else { throw ValidationError("--zero must be 0 or 1 (got \(zero))") }
        _ = try model.load()
        if let torch, !FileManager.default.fileExists(atPath: torch + "/torch_bench.py") {
            throw ValidationError("--torch \(torch): no torch_bench.py there; pass the directory that holds it")
        }
    }

    func run() throws {
        if convs { return try runConvs() }
        let comm = try Communicators.makeDefault()
        let blas = BLASRuntime.configureThreadsForThisProcess(explicit: threads)
        var settings = StepBenchmarkSettings()
        settings.mode = mode; settings.configName = model.config; settings.config = try model.load()
        settings.batchSize = batchSize; settings.steps = steps; settings.warmup = warmup; settings.profile = profile
        settings.zeroStage = zero
        let report: BenchReport
        do {
            report = try StepBenchmark.measure(settings, comm: comm, threadSource: blas.source.description)
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw error
        }
        let world = comm.size, isRoot = comm.isRoot
        comm.finalize()
        guard isRoot else { return }
        var out = report
        if let torch {
            out.torch = try TorchComparison.run(directory: torch, mode: mode, config: model.config, batchSize: batchSize,
                                                threads: BLASRuntime.threads, world: world, steps: steps,
                                                ours: report.samplesPerSecond)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(out), as: UTF8.self))
    }

    /// `--convs`: the config's norm and conv shapes with each algorithm that applies, one JSON line each.
    func runConvs() throws {
        BLASRuntime.setThreads(threads ?? 1)
        let config = try model.load()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for (label, shape) in NormBenchmark.shapes(config: config, batch: batchSize) {
            let t = NormBenchmark.measure(shape, repeats: steps)
            print("{\"label\":\"\(label)\",\"forwardMs\":\(t.forwardMs),\"backwardMs\":\(t.backwardMs)}")
        }
        for (label, shape) in ConvBenchmark.shapes(config: config, batch: batchSize) {
            for algorithm in shape.applicableAlgorithms {
                for samples in convSamples.isEmpty ? [nil] : convSamples.map(Optional.some) {
                    var s = shape
                    s.algorithmChoice = algorithm
                    s.gemmSamples = samples
                    let m = ConvBenchmark.measure(label, s, repeats: steps)
                    print(String(decoding: try encoder.encode(m), as: UTF8.self))
                }
            }
        }
    }
}
