// The speed of generation (`bench --mode sample`): the very Generator that `sample` and `eval` run (DDIM through
// the UNet and its ControlNets, inference forwards, worker threads with one BLAS thread each, the ranks' shares
// gathered), on seeded weights and synthetic hints, as evaluations per second: one evaluation is one sample
// through one denoising step (the UNet, every ControlNet, and with classifier-free guidance the UNet's second
// half-batch). Under mpirun every rank runs its share and rank 0 reports the total.
import Foundation
import Distributed
import Kernels
import Model
import Randomness
import Training

public struct SampleBenchmarkSettings: Sendable {
    /// The config's name as given (a preset or a JSON path), for the report.
    public var configName = "mnist"
    public var config = ModelConfig.mnist
    public var batchSize = GenerationPlan.defaultBatchSize
    /// Samples per timed run, and the DDIM steps each takes.
    public var count = 128
    public var samplerSteps = 20
    /// Worker threads per rank.
    public var threads = 1
    /// Timed runs (the median is reported), after one untimed run of one step (the arenas size themselves).
    public var repeats = 3
    /// ControlNets beside the UNet (0: the base alone).
    public var controls = 1
    /// Classifier-free guidance scale (class configs; 1 = none).
    public var cfgScale: Float = 1
    /// Of the convs' and attention's matrix products (Precision.swift).
    public var precision = Precision.fp32
    /// Split a one-thread run's time by phase (two clock reads per kernel call).
    public var profile = true
    public init() {}
}

/// What `bench --mode sample` prints (JSON).
public struct SampleBenchReport: Codable, Sendable {
    public var mode = "sample"
    public var config: String, precision: String
    public var ranks: Int, threadsPerRank: Int, blasCore: String, kernelISA: String
    public var batchSize: Int, count: Int, samplerSteps: Int, controls: Int, cfgScale: Float
    /// count x samplerSteps: the evaluations of one run over all ranks.
    public var evaluationsPerRun: Int
    /// Over the median run (each run timed on its slowest rank), and every run's figure.
    public var evaluationsPerSecond: Double
    public var evaluationsPerSecondRuns: [Double]
    public var secondsPerRunMedian: Double
    /// Rank 0's process CPU time (all threads, user + system) per evaluation it computed: with several threads,
    /// what the parallel run costs in cores, spinning included; on a shared machine less noisy than wall time.
    public var cpuMillisecondsPerEvaluationRank0: Double
    /// With one thread: rank 0's exclusive time per phase over the median run, in ms (a conv's GEMMs in "gemm").
    public var phaseMsPerRun: [String: Double]?
    public var peakRSSMegabytesPerRankMax: Double
    /// Rank 0's generation arenas (all its worker threads).
    public var arenaMegabytesRank0: Double
    /// The same work in PyTorch (`--torch`), one entry per variant asked for.
    public var torch: [TorchSamplingFigure]?
}

public enum SampleBenchmark {
    public static func measure(_ s: SampleBenchmarkSettings, comm: any Communicator) throws -> SampleBenchReport {
        let c = s.config, S = c.imageSize
        let unet = UNet(config: c)
        let base = FloatBuffer(count: unet.parameterCount)
        Initializers.initialize(unet.table, base.pointer, seed: 1)
        let net = ControlNet(config: c)
        let controls = (0..<s.controls).map { k -> Generator.Control in
            let params = FloatBuffer(count: net.parameterCount)
            // A copy of the UNet with seeded (non-zero) zero convs: a "trained" ControlNet; speed does not care.
            Initializers.initialize(net.table, params.pointer, seed: 2 + UInt64(k))
            return Generator.Control(params: params, scale: 1)
        }
        let generator = Generator(config: c, base: base, controls: controls)
        var rng = RandomStream(seed: 3)
        let hints = s.controls > 0 ? (0..<(s.count * c.hintChannels * S * S)).map { _ in rng.uniform() > 0.8 ? Float(1) : 0 } : nil
        let labels = c.numClasses > 0 ? (0..<s.count).map { $0 % c.numClasses } : nil
        var settings = GenerationSettings()
        settings.batchSize = s.batchSize
        settings.threads = s.threads
        settings.cfgScale = s.cfgScale
        settings.precision = s.precision
        settings.sampler = SamplerSettings(kind: .ddim, steps: 1, seed: 0)
        _ = try generator.generate(count: s.count, hints: hints, labels: labels, settings: settings, comm: comm)
        settings.sampler.steps = s.samplerSteps
        // The phase clock is one per process and not for concurrent threads: only a one-thread run is split.
        let profiler = PhaseProfiler.shared
        let profile = s.profile && s.threads == 1
        var seconds: [Double] = [], phases: [[Phase: Double]] = []
        let cpuBefore = cpuSeconds()
        for _ in 0..<s.repeats {
            try comm.barrier()
            profiler.setEnabled(profile)
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try generator.generate(count: s.count, hints: hints, labels: labels, settings: settings, comm: comm)
            let mine = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            phases.append(profiler.snapshot())
            profiler.setEnabled(false)
            seconds.append(try comm.allReduce(mine, op: .max))
        }
        let cpu = cpuSeconds() - cpuBefore
        let mineEvaluations = GenerationPlan.share(count: s.count, batchSize: s.batchSize, rank: comm.rank,
                                                   ranks: comm.size).count * s.samplerSteps * s.repeats
        let evaluations = s.count * s.samplerSteps
        let rates = seconds.map { Double(evaluations) / $0 }
        let median = seconds.sorted()[seconds.count / 2]
        let medianIndex = seconds.firstIndex(of: median) ?? 0
        let rss = try comm.allReduce(StepBenchmark.peakRSSMegabytes(), op: .max)
        return SampleBenchReport(
            config: s.configName, precision: s.precision.rawValue, ranks: comm.size, threadsPerRank: s.threads,
            blasCore: BLASRuntime.coreName, kernelISA: KernelISA.current, batchSize: s.batchSize, count: s.count,
            samplerSteps: s.samplerSteps, controls: s.controls, cfgScale: s.cfgScale, evaluationsPerRun: evaluations,
            evaluationsPerSecond: Double(evaluations) / median, evaluationsPerSecondRuns: rates,
            secondsPerRunMedian: median, cpuMillisecondsPerEvaluationRank0: cpu * 1000 / Double(max(1, mineEvaluations)),
            phaseMsPerRun: profile ? Dictionary(uniqueKeysWithValues: phases[medianIndex].map {
                ($0.key.description, $0.value * 1000) }) : nil,
            peakRSSMegabytesPerRankMax: rss,
            arenaMegabytesRank0: Double(generator.arenaBytes) / 1_048_576, torch: nil)
    }
}

/// This process's CPU time so far, user + system, every thread.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
}
