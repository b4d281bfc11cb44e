// `controlnet bench`: the speed of the real training step (Benchmarks' StepBenchmark runs the trainer's
// TrainingStep on synthetic data) as JSON; `--mode sample` the speed of generation (SampleBenchmark: evaluations/s
// at a config, batch, precision and thread count); `--convs` times each conv algorithm at the config's conv
// shapes. `--torch DIR` then runs PyTorch on the same work right after (rank 0): the reference's torch_bench.py,
// or for sampling scripts/torch_sample_bench.py with the reference model from DIR.
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

    /// What is timed: a training step of either kind, or sampling.
    enum Mode: String, ExpressibleByArgument, CaseIterable { case base, controlnet, sample }

    @Option(help: "base (the whole UNet trains), controlnet (frozen UNet + trainable ControlNet), or sample (DDIM through the UNet and --controls ControlNets, inference).")
    var mode: Mode = .controlnet
    @OptionGroup var model: ModelFlags
    @Option(name: .customLong("batch-size"), help: "Samples per rank per step.")
    var batchSize = 64
    @Option(help: "Timed steps (the median is reported).")
    var steps = 7
    @Option(help: "Untimed steps first (the activation arenas size themselves on the first step).")
    var warmup = 2
    @Option(help: "OpenBLAS threads per rank (sample: worker threads per rank, one BLAS thread each); default: OPENBLAS_NUM_THREADS, else this rank's share of the cores.")
    var threads: Int?
    @Option(help: "Sample: samples per timed run.")
    var count = 128
    @Option(help: "Sample: DDIM steps per sample.")
    var samplerSteps = 20
    @Option(help: "Sample: timed runs (the median is reported).")
    var repeats = 3
    @Option(help: "Sample: ControlNets beside the UNet (0: the base alone).")
    var controls = 1
    @Option(help: "Sample: classifier-free guidance scale (class configs).")
    var cfgScale: Float = 1
    @Option(help: "Sample with --torch: PyTorch variants to run, fp32 (no_grad), bf16 (no_grad + bf16 autocast) or both.")
    var torchPrecision: TorchVariants = .fp32
    @Flag(inversion: .prefixedNo, help: "Split the time by phase (costs two clock reads per kernel call).")
    var profile = true
    @Flag(help: "Instead of training steps, time each conv algorithm at the config's conv shapes (batch --batch-size).")
    var convs = false
    @Option(help: ArgumentHelp("Conv timing: samples per GEMM to try (default: the built-in rule).", visibility: .hidden))
    var convSamples: [Int] = []
    @Option(help: "Matrix products of convs and attention (training steps and sampling): fp32 (default) or bf16 (operands rounded, fp32 sums).")
    var precision: Precision = .fp32
    @Flag(name: .customLong("gemm-shapes"), help: "Also list every GEMM shape a step issues (calls and ms per step).")
    var gemmShapes = false
    @Option(help: "1: shard the AdamW moments across the ranks (ZeRO-1), as train --zero 1 does.")
    var zero = 0
    @Option(help: "Directory of torch_bench.py: run the PyTorch reference on the same work afterwards (rank 0).")
    var torch: String?
    @Option(name: .customLong("torch-amp"), help: "With --torch: PyTorch's precision, fp32 (eager, the default) or bf16 (autocast to bfloat16, AMP=bf16).")
    var torchAmp: Precision?

    enum TorchVariants: String, ExpressibleByArgument, CaseIterable { case fp32, bf16, both }

    func validate() throws {
        do {
            try OptionBounds.count("--batch-size", batchSize, OptionBounds.batchSize)
            try OptionBounds.count("--steps", steps, OptionBounds.benchSteps)
            try OptionBounds.count("--warmup", warmup, OptionBounds.benchWarmup)
            if let threads { try OptionBounds.count("--threads", threads, OptionBounds.threads) }
            if mode == .sample {
                try OptionBounds.count("--count", count, OptionBounds.benchSampleCount)
                try OptionBounds.count("--repeats", repeats, OptionBounds.benchRepeats)
            }
        } catch { throw ValidationError("\(error)") }
        if torch == nil && torchAmp != nil {
            throw ValidationError("--torch-amp sets PyTorch's precision for --torch DIR, which is not given; add --torch DIR (the directory of torch_bench.py), or drop --torch-amp")
        }
        if mode == .sample {
            guard (1...1000).contains(samplerSteps) else { throw ValidationError("--sampler-steps must be in 1...1000 (got \(samplerSteps))") }
            guard (0...8).contains(controls) else { throw ValidationError("--controls must be in 0...8 (got \(controls))") }
            guard cfgScale.isFinite else { throw ValidationError("--cfg-scale must be finite (got \(cfgScale))") }
            if torch != nil && TorchComparison.samplingScript() == nil {
                throw ValidationError("--torch: scripts/torch_sample_bench.py not found under the working directory or beside the build")
            }
        }
        guard (0...1).contains(zero) else { throw ValidationError("--zero must be 0 or 1 (got \(zero))") }
        let config = try model.load()
        // The batch's activations (or, sampling, the count's images) are refused with the bytes they need,
        // before the benchmark allocates them.
        do {
            if convs {
                // The conv timings allocate one shape's tensors at a time: the step's activations bound them.
                try MemoryPlan.check(config: config, configName: model.config, mode: .base, samples: batchSize)
            } else if mode == .sample {
                try MemoryPlan.checkGeneration(config: config, count: count, batchSize: batchSize,
                                               workers: threads ?? GenerationPlan.defaultThreads, imageSets: 1)
            } else {
                try MemoryPlan.check(config: config, configName: model.config, mode: mode == .base ? .base : .controlnet,
                                     samples: batchSize)
            }
        } catch { throw ValidationError("\(error)") }
        if let torch, !FileManager.default.fileExists(atPath: torch + "/torch_bench.py") {
            throw ValidationError("--torch \(torch): no torch_bench.py there; pass the directory that holds it")
        }
    }

    func run() throws {
        if precision == .bf16, let warning = BF16Kernel.slowPathWarning {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
        if convs { return try runConvs() }
        if mode == .sample { return try runSampling() }
        let mode: TrainingMode = self.mode == .base ? .base : .controlnet
        let comm = try Communicators.makeDefault()
        let blas = BLASRuntime.configureThreadsForThisProcess(explicit: threads)
        var settings = StepBenchmarkSettings()
        settings.mode = mode; settings.configName = model.config; settings.config = try model.load()
        settings.batchSize = batchSize; settings.steps = steps; settings.warmup = warmup; settings.profile = profile
        settings.gemmShapes = gemmShapes; settings.precision = precision
        settings.zeroStage = zero
        try measureAndPrint(comm) {
            try StepBenchmark.measure(settings, comm: comm, threadSource: blas.source.description)
        } compare: { report, world in
            guard let torch else { return report }
            var out = report
            out.torch = try TorchComparison.run(directory: torch, mode: mode, config: model.config, batchSize: batchSize,
                                                threads: BLASRuntime.threads, world: world, steps: steps,
                                                amp: torchAmp ?? .fp32, ours: report.samplesPerSecond)
            return out
        }
    }

    /// Measures on every rank (a failure on one aborts the job, so no rank waits on it), finalizes MPI, and on
    /// rank 0 adds the PyTorch comparison (`compare`, given the world size) and prints the report as JSON.
    func measureAndPrint<Report: Encodable>(_ comm: any Communicator, _ measure: () throws -> Report,
                                            compare: (Report, Int) throws -> Report) throws {
        let report: Report
        do {
            report = try measure()
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw error
        }
        let world = comm.size, isRoot = comm.isRoot
        comm.finalize()
        guard isRoot else { return }
        let out = try compare(report, world)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(out), as: UTF8.self))
    }

    /// `--mode sample`: generation's evaluations/s, then PyTorch's on the same work with --torch (rank 0).
    func runSampling() throws {
        let comm = try Communicators.makeDefault()
        BLASRuntime.configureThreadsForThisProcess()
        var s = SampleBenchmarkSettings()
        s.configName = model.config; s.config = try model.load()
        s.batchSize = batchSize; s.count = count; s.samplerSteps = samplerSteps; s.repeats = repeats
        s.threads = threads ?? GenerationPlan.defaultThreads; s.controls = controls; s.cfgScale = cfgScale
        s.precision = precision; s.profile = profile
        try measureAndPrint(comm) {
            try SampleBenchmark.measure(s, comm: comm)
        } compare: { report, world in
            guard let torch, let script = TorchComparison.samplingScript() else { return report }
            var out = report
            let variants = torchPrecision == .both ? [false, true] : [torchPrecision == .bf16]
            out.torch = try variants.map { bf16 in
                try TorchComparison.runSampling(script: script, reference: torch, config: model.config,
                                                batchSize: batchSize, count: count, steps: samplerSteps,
                                                threads: s.threads, world: world, controls: controls,
                                                cfgScale: cfgScale, repeats: repeats, bf16: bf16,
                                                ours: report.evaluationsPerSecond)
            }
            return out
        }
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

extension Precision: ExpressibleByArgument {}
