// The speed of one training step: the very TrainingStep the trainer runs (zero the gradients, forward + loss +
// backward, non-finite check, the small and the gradient all-reduce, norm, clipping, AdamW) on synthetic data,
// with the time split by phase, the GEMM FLOP/s against this machine's sgemm ceiling, and peak RSS. Under mpirun
// every rank runs it and rank 0 reports the totals (throughput summed over ranks).
import Foundation
import Distributed
import Kernels
import Model
import Randomness
import Training

public struct StepBenchmarkSettings: Sendable {
    public var mode: TrainingMode = .controlnet
    /// The config's name as given (a preset or a JSON path), for the report.
    public var configName = "mnist"
    public var config = ModelConfig.mnist
    public var batchSize = 64
    public var steps = 7
    public var warmup = 2
    /// Split the time by phase (two clock reads per kernel call).
    public var profile = true
    /// Record every GEMM shape the timed steps issue (GemmShapeLog).
    public var gemmShapes = false
    /// Of the convs' and attention's products (Precision.swift).
    public var precision = Precision.fp32
    /// 1: shard the AdamW moments across the ranks (ZeRO-1), as `--zero 1` trains.
    public var zeroStage = 0
    public init() {}
}

public enum StepBenchmark {
    public static func measure(_ s: StepBenchmarkSettings, comm: any Communicator, threadSource: String) throws -> BenchReport {
        let model = makeModel(s.mode, s.config)
        var settings = StepSettings(schedule: LRSchedule(base: 1e-4, warmup: 0, total: s.warmup + s.steps,
                                                         kind: .constant, minFraction: 0))
        settings.maxGradNorm = 1
        settings.precision = s.precision
        settings.zeroStage = s.zeroStage
        let step = TrainingStep(model: model, comm: comm, settings: settings)
        let batches = SyntheticBatches(config: s.config, batchSize: s.batchSize, rank: comm.rank)
        // The sgemm ceiling at this thread count, measured before the step's memory exists.
        let ceiling = SgemmBenchmark.measure(SgemmCase(name: "square 1024", m: 1024, n: 1024, k: 1024), repeats: 5)
        let profiler = PhaseProfiler.shared
        var stepSeconds: [Double] = [], phaseTotals: [Phase: Double] = [:], gemmFlops = 0.0, nominalFlops = 0.0
        for index in 1...(s.warmup + s.steps) {
            try comm.barrier()
            let timed = index > s.warmup
            profiler.setEnabled(timed && (s.profile || s.gemmShapes))
            if index == s.warmup + 1 { GemmShapeLog.shared.setEnabled(s.gemmShapes) }
            let start = DispatchTime.now().uptimeNanoseconds
            let outcome = try step.run(batches)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            guard !outcome.skipped, outcome.gradNorm?.isFinite == true else {
                throw TrainingError("bench: non-finite loss or gradient at step \(index)")
            }
            if timed {
                stepSeconds.append(seconds)
                for (phase, t) in profiler.snapshot() { phaseTotals[phase, default: 0] += t }
                gemmFlops += profiler.gemmFlops
                nominalFlops += profiler.nominalFlops
            }
        }
        profiler.setEnabled(false)
        let shapes = GemmShapeLog.shared.stats.map { stats -> GemmShapeStats in
            var perStep = stats
            perStep.calls /= s.steps
            perStep.seconds /= Double(s.steps)
            return perStep
        }
        GemmShapeLog.shared.setEnabled(false)
        let median = stepSeconds.sorted()[stepSeconds.count / 2]
        let rss = peakRSSMegabytes()
        var totals = [rss, rss, median]
        try comm.allReduce(&totals, op: .sum)
        var maxima = [rss, median]
        try comm.allReduce(&maxima, op: .max)
        let perStep = Double(s.steps), profile = s.profile
        let flopsPerStep = gemmFlops / perStep
        return BenchReport(
            mode: s.mode.rawValue, config: s.configName, batchSizePerRank: s.batchSize, ranks: comm.size,
            blasThreadsPerRank: BLASRuntime.threads, blasThreadSource: threadSource, blasCore: BLASRuntime.coreName,
            kernelISA: KernelISA.current, precision: s.precision.rawValue,
            bf16Kernel: s.precision == .bf16 ? BF16Kernel.current : nil,
            steps: s.steps, trainableParameters: model.params.count, frozenParameters: model.frozen?.count ?? 0,
            samplesPerSecond: Double(s.batchSize) * Double(comm.size) / maxima[1],
            msPerStepMedian: median * 1000, msPerStepSlowestRank: maxima[1] * 1000,
            msPerStepMean: stepSeconds.reduce(0, +) / perStep * 1000,
            phaseMsPerStep: profile ? Dictionary(uniqueKeysWithValues: phaseTotals.map {
                ($0.key.description, $0.value / perStep * 1000) }) : nil,
            gemmGflopPerStep: profile ? flopsPerStep / 1e9 : nil,
            gemmGflopsAchieved: profile ? flopsPerStep / ((phaseTotals[.gemm] ?? .nan) / perStep) / 1e9 : nil,
            stepGflopsAchieved: profile ? flopsPerStep / median / 1e9 : nil,
            nominalGflopPerStep: profile ? nominalFlops / perStep / 1e9 : nil,
            nominalGflopsPerSecond: profile ? nominalFlops / perStep / median / 1e9 : nil,
            sgemmCeilingGflops: ceiling.bestGflops,
            peakRSSMegabytesPerRankMax: maxima[0], peakRSSMegabytesSum: totals[0],
            optimizerMegabytesPerRank: Double(step.optimizerBytes) / 1_048_576, zeroStage: s.zeroStage,
            activationArenaMegabytes: Double(model.arenas.acts.capacity) * 4 / 1_048_576,
            gradientArenaMegabytes: Double(model.arenas.grads.capacity) * 4 / 1_048_576,
            gemmShapesPerStep: s.gemmShapes ? shapes : nil, torch: nil)
    }

    /// A freshly initialised model (seeded), so every rank and every run times the same numbers.
    static func makeModel(_ mode: TrainingMode, _ c: ModelConfig) -> TrainingModel {
        switch mode {
        case .base:
            let base = BaseTraining(config: c)
            Initializers.initialize(base.unet.table, base.params.pointer, seed: 1)
            return base
        case .controlnet:
            let unet = UNet(config: c)
            let weights = FloatBuffer(count: unet.parameterCount)
            Initializers.initialize(unet.table, weights.pointer, seed: 1)
            return ControlNetTraining(config: c, base: weights, seed: 2)
        }
    }

    public static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // KiB on Linux
    }
}

/// Fixed images, noise and hints (as torch_bench.py: x0 and eps drawn once), fresh timesteps every step.
final class SyntheticBatches: BatchSource {
    let config: ModelConfig, batchSize: Int, rank: Int
    let buffers: BatchBuffers

    init(config: ModelConfig, batchSize: Int, rank: Int) {
        self.config = config; self.batchSize = batchSize; self.rank = rank
        buffers = BatchBuffers(config: config, batchSize: batchSize)
        var rng = RandomStream(UInt64(rank), RandomPurpose.noise.rawValue)
        rng.fillNormal(buffers.x0.pointer, count: buffers.x0.count)
        rng.fillNormal(buffers.eps.pointer, count: buffers.eps.count)
        for i in 0..<buffers.hint.count { buffers.hint.pointer[i] = rng.uniform() > 0.8 ? 1 : 0 }
    }

    func batch(step: Int, micro: Int, rank _: Int, worldSize _: Int) -> TrainingBatch {
        var rng = RandomStream(UInt64(rank), RandomPurpose.timestep.rawValue, UInt64(step))
        let t = (0..<batchSize).map { _ in rng.int(below: 1000) }
        let labels = config.numClasses > 0 ? (0..<batchSize).map { _ in rng.int(below: config.numClasses + 1) } : nil
        return buffers.batch(t: t, labels: labels)
    }
}

/// What `bench` prints (JSON).
public struct BenchReport: Codable, Sendable {
    public var mode: String, config: String
    public var batchSizePerRank: Int, ranks: Int
    public var blasThreadsPerRank: Int, blasThreadSource: String, blasCore: String, kernelISA: String
    /// Of the convs' and attention's matrix products; the bf16 micro-kernel variant when bf16.
    public var precision: String, bf16Kernel: String?
    public var steps: Int, trainableParameters: Int, frozenParameters: Int
    /// Summed over ranks (the global batch over the slowest rank's median step).
    public var samplesPerSecond: Double
    public var msPerStepMedian: Double, msPerStepSlowestRank: Double, msPerStepMean: Double
    /// Rank 0's exclusive time per phase (a conv's GEMMs are in "gemm").
    public var phaseMsPerStep: [String: Double]?
    /// GFLOP issued to sgemm per step; their rate inside the GEMM calls; over the whole (median) step.
    public var gemmGflopPerStep: Double?, gemmGflopsAchieved: Double?, stepGflopsAchieved: Double?
    /// The same step counted as direct convolutions (PyTorch's FLOP counter's figure) and that count over the
    /// median step: above the sgemm ceiling because Winograd convolutions do fewer multiplies.
    public var nominalGflopPerStep: Double?, nominalGflopsPerSecond: Double?
    public var sgemmCeilingGflops: Double
    public var peakRSSMegabytesPerRankMax: Double, peakRSSMegabytesSum: Double
    /// AdamW moments this rank holds (ZeRO-1 divides them by the rank count).
    public var optimizerMegabytesPerRank: Double, zeroStage: Int
    /// Rank 0's step memory: the two stack arenas (activations saved for backward; gradients and temporaries).
    public var activationArenaMegabytes: Double, gradientArenaMegabytes: Double
    /// With --gemm-shapes: each distinct sgemm call shape, its calls and seconds per step, most time first.
    public var gemmShapesPerStep: [GemmShapeStats]?
    public var torch: TorchFigure?
}
