// `controlnet bench`: the speed of one training step, exactly the work the trainer does per step (zero the
// gradients, forward + backward, non-finite check, gradient all-reduce, norm, AdamW) on synthetic data, with the
// time split by phase, the GEMM FLOP/s against this machine's sgemm ceiling, and peak RSS. Under mpirun every rank
// runs it and rank 0 prints the totals (throughput summed over ranks). `--torch DIR` then runs the PyTorch
// reference's torch_bench.py on the same work right after, so both figures come from the same minute.
import ArgumentParser
import Foundation
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
    @Option(help: "Model config: a preset (mnist, mnist-class, tiny, tiny-class) or a JSON file.")
    var config = "mnist"
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
    @Flag(help: "Instead of training steps, time each conv algorithm at the mnist conv shapes (batch --batch-size).")
    var convs = false
    @Option(help: ArgumentHelp("Conv timing: samples per GEMM to try (default: the built-in rule).", visibility: .hidden))
    var convSamples: [Int] = []
    @Option(help: "Matrix products of convs and attention: fp32 (default) or bf16 (operands rounded, fp32 sums).")
    var precision: MatmulPrecision = .fp32
    @Flag(name: .customLong("gemm-shapes"), help: "Also list every GEMM shape a step issues (calls and ms per step).")
    var gemmShapes = false
    @Option(help: "Directory of torch_bench.py: run the PyTorch reference on the same work afterwards (rank 0).")
    var torch: String?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0 (got \(warmup))") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        do { _ = try ModelConfig.named(config) } catch { throw ValidationError("\(error)") }
        if let torch, !FileManager.default.fileExists(atPath: torch + "/torch_bench.py") {
            throw ValidationError("--torch \(torch): no torch_bench.py there; pass the directory that holds it")
        }
    }

    func run() throws {
        MatmulPrecision.current = precision
        if precision == .bf16 && !BF16Kernel.cpuHasBF16Instructions {
            FileHandle.standardError.write(Data(("warning: this CPU has no bf16 instructions; bf16 runs emulated "
                + "(the same results, at best fp32 speed)\n").utf8))
        }
        if convs { return try runConvs() }
        let comm = try Communicators.makeDefault()
        let environment = ProcessInfo.processInfo.environment
        let threadSource: String
        if let threads {
            BLASRuntime.setThreads(threads)
            threadSource = "--threads"
        } else {
            let ranks = BLASRuntime.ranksOnThisNode(environment: environment)
            threadSource = BLASRuntime.configureThreads(ranksOnThisNode: ranks, environment: environment).source.description
        }
        let report: BenchReport
        do {
            report = try measure(comm: comm, threadSource: threadSource)
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw error
        }
        let world = comm.size, isRoot = comm.isRoot
        comm.finalize()
        guard isRoot else { return }
        var out = report
        if let torch { out.torch = try runTorch(directory: torch, world: world, ours: report.samplesPerSecond) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(out), as: UTF8.self))
    }

    /// `--convs`: each mnist conv shape with each algorithm that applies to it, one JSON line per measurement.
    func runConvs() throws {
        BLASRuntime.setThreads(threads ?? 1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for (label, c) in [("groupnorm+silu 32ch @28", 32), ("groupnorm+silu 96ch @28", 96)] {
            let t = NormBenchmark.measure(GroupNormShape(batch: batchSize, channels: c, spatial: 784, groups: 8),
                                          repeats: steps)
            print("{\"label\":\"\(label)\",\"forwardMs\":\(t.forwardMs),\"backwardMs\":\(t.backwardMs)}")
        }
        for (label, shape) in ConvBenchmark.mnistShapes(batch: batchSize) {
            var variants: [ConvShape] = []
            for algorithm in shape.applicableAlgorithms {
                for samples in convSamples.isEmpty ? [nil] : convSamples.map(Optional.some) {
                    var s = shape
                    s.algorithmChoice = algorithm
                    s.gemmSamples = samples
                    variants.append(s)
                }
            }
            for s in variants {
                let m = ConvBenchmark.measure(label, s, repeats: steps)
                print(String(decoding: try encoder.encode(m), as: UTF8.self))
            }
        }
    }

    func measure(comm: any Communicator, threadSource: String) throws -> BenchReport {
        let modelConfig = try ModelConfig.named(config)
        let model = makeModel(modelConfig)
        let count = model.params.count
        let m = FloatBuffer(count: count), v = FloatBuffer(count: count)
        let batch = SyntheticBatch(config: modelConfig, batchSize: batchSize, rank: comm.rank)
        // The sgemm ceiling at this thread count, measured before the step's memory exists.
        let ceiling = SgemmBenchmark.measure(SgemmCase(name: "square 1024", m: 1024, n: 1024, k: 1024), repeats: 5)
        let profiler = PhaseProfiler.shared
        var stepSeconds: [Double] = [], phaseTotals: [Phase: Double] = [:], gemmFlops = 0.0, nominalFlops = 0.0
        for step in 1...(warmup + steps) {
            try comm.barrier()
            let timed = step > warmup
            profiler.setEnabled(timed && (profile || gemmShapes))
            if step == warmup + 1 { GemmShapeLog.shared.setEnabled(gemmShapes) }
            let start = DispatchTime.now().uptimeNanoseconds
            try trainStep(model, batch: batch, m: m, v: v, adamStep: step, comm: comm)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if timed {
                stepSeconds.append(seconds)
                for (phase, s) in profiler.snapshot() { phaseTotals[phase, default: 0] += s }
                gemmFlops += profiler.gemmFlops
                nominalFlops += profiler.nominalFlops
            }
        }
        profiler.setEnabled(false)
        let shapes = GemmShapeLog.shared.stats.map { s -> GemmShapeStats in
            var perStep = s
            perStep.calls /= steps
            perStep.seconds /= Double(steps)
            return perStep
        }
        GemmShapeLog.shared.setEnabled(false)
        let median = stepSeconds.sorted()[stepSeconds.count / 2]
        let rss = peakRSSMegabytes()
        var totals = [rss, rss, median]
        try comm.allReduce(&totals, op: .sum)
        var maxima = [rss, median]
        try comm.allReduce(&maxima, op: .max)
        let perStep = Double(steps)
        let flopsPerStep = gemmFlops / perStep
        return BenchReport(
            mode: mode.rawValue, config: config, batchSizePerRank: batchSize, ranks: comm.size,
            blasThreadsPerRank: BLASRuntime.threads, blasThreadSource: threadSource, blasCore: BLASRuntime.coreName,
            kernelISA: KernelISA.current, precision: precision.rawValue,
            bf16Kernel: precision == .bf16 ? BF16Kernel.current : nil,
            steps: steps, trainableParameters: count, frozenParameters: model.frozen?.count ?? 0,
            samplesPerSecond: Double(batchSize) * Double(comm.size) / maxima[1],
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
            activationArenaMegabytes: Double(model.arenas.acts.capacity) * 4 / 1_048_576,
            gradientArenaMegabytes: Double(model.arenas.grads.capacity) * 4 / 1_048_576,
            gemmShapesPerStep: gemmShapes ? shapes : nil, torch: nil)
    }

    func makeModel(_ c: ModelConfig) -> TrainingModel {
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

    /// The model's forward + backward as its `accumulate` runs it (TrainingBatch has no public initialiser, so the
    /// bench calls the same public pieces itself). Gradients are added into model.grads; returns the loss.
    func accumulate(_ model: TrainingModel, _ b: SyntheticBatch, t: [Int], labels: [Int]?) -> Float {
        let c = model.config, arenas = model.arenas, schedule = b.schedule
        arenas.reset()
        let per = c.inChannels * c.imageSize * c.imageSize, n = t.count * per
        schedule.qSample(x0: b.x0.pointer, eps: b.eps.pointer, t: t, perSample: per, into: b.xT.pointer)
        let ws = WeightSource(params: model.params.pointer, grads: model.grads.pointer)
        let out: UnsafeMutablePointer<Float>
        var backward: (UnsafeMutablePointer<Float>) -> Void
        if let base = model as? BaseTraining {
            out = base.unet.forward(ws, x: b.xT.pointer, t: t, labels: labels, arenas: arenas)
            backward = { base.unet.backward(ws, dOut: $0, arenas: arenas) }
        } else if let cn = model as? ControlNetTraining {
            let frozen = WeightSource(params: cn.base.pointer, grads: nil)
            let residuals = cn.control.forward(ws, x: b.xT.pointer, hint: b.hint.pointer, t: t, labels: labels,
                                               arenas: arenas)
            out = cn.unet.forward(frozen, x: b.xT.pointer, t: t, labels: labels,
                                  controls: [ControlResiduals(residuals: residuals, scale: cn.scale)], arenas: arenas)
            backward = { dOut in
                let dRes = cn.unet.backward(frozen, dOut: dOut, arenas: arenas)
                cn.control.backward(ws, dResiduals: dRes.all, scale: cn.scale, arenas: arenas)
            }
        } else {
            preconditionFailure("bench: unknown training model \(type(of: model))")
        }
        let loss = MSELoss.forward(count: n, prediction: out, target: b.eps.pointer)
        let dOut = arenas.grads.takeZeroed(n)
        MSELoss.backward(count: n, prediction: out, target: b.eps.pointer, scale: 1, dPrediction: dOut)
        backward(dOut)
        return loss
    }

    /// One optimizer step as Trainer.trainStep takes it (one micro-step, gradient clipping at norm 1).
    func trainStep(_ model: TrainingModel, batch: SyntheticBatch, m: FloatBuffer, v: FloatBuffer, adamStep: Int,
                   comm: any Communicator) throws {
        let profiler = PhaseProfiler.shared
        let grads = model.grads
        profiler.measure(.elementwise) { grads.zero() }
        let (t, labels) = batch.next(step: adamStep)
        let loss = accumulate(model, batch, t: t, labels: labels)
        let bad = profiler.measure(.elementwise) { !loss.isFinite || !Elementwise.allFinite(count: grads.count, grads.pointer) }
        try profiler.measure(.allReduce) {
            var small = [Double(loss), bad ? 1 : 0, 0]
            try comm.allReduce(&small, op: .sum)
            try comm.allReduceAverage(grads.pointer, count: grads.count)
        }
        try profiler.measure(.optimizer) {
            let norm = Elementwise.sumOfSquares(count: grads.count, grads.pointer).squareRoot()
            if norm > 1 { Elementwise.scale(count: grads.count, alpha: Float(1 / (norm + 1e-6)), x: grads.pointer) }
            guard norm.isFinite else { throw TrainingError("bench: non-finite gradient norm at step \(adamStep)") }
            AdamW.step(count: grads.count, params: model.params.pointer, grads: grads.pointer, m: m.pointer,
                       v: v.pointer, lr: 1e-4, step: adamStep, config: AdamWConfig())
        }
    }

    func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // KiB on Linux
    }

    /// Runs `python3 DIR/torch_bench.py MODE CONFIG BATCH THREADS WORLD` and reads its one result line.
    func runTorch(directory: String, world: Int, ours: Double) throws -> TorchFigure {
        let process = Process()
        // Through a shell that forks python rather than exec'ing it: Linux carries the peak RSS of the process
        // that execs into the new program's ru_maxrss, so a direct spawn would report ours as PyTorch's.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "python3 torch_bench.py \"$@\"; exit $?", "sh", mode.rawValue, config,
                             "\(batchSize)", "\(BLASRuntime.threads)", "\(world)"]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["STEPS"] = "\(steps)"
        for key in env.keys where key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") { env[key] = nil }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("torch ") }),
              let rate = Self.number(before: " samples/s", in: line) else {
            throw TrainingError("--torch: torch_bench.py in \(directory) failed (exit \(process.terminationStatus)); its output:\n\(text)")
        }
        return TorchFigure(line: String(line), samplesPerSecond: rate,
                           peakRSSMegabytesRank0: Self.number(before: " MiB", in: line), oursOverTorch: ours / rate)
    }

    static func number(before suffix: String, in line: Substring) -> Double? {
        guard let end = line.range(of: suffix)?.lowerBound else { return nil }
        let head = line[..<end]
        let start = head.lastIndex(of: " ").map { head.index(after: $0) } ?? head.startIndex
        return Double(head[start...])
    }
}

extension TrainingMode: ExpressibleByArgument {}
extension MatmulPrecision: ExpressibleByArgument {}

struct TorchFigure: Codable {
    var line: String
    var samplesPerSecond: Double
    var peakRSSMegabytesRank0: Double?
    var oursOverTorch: Double
}

struct BenchReport: Codable {
    var mode: String, config: String
    var batchSizePerRank: Int, ranks: Int
    var blasThreadsPerRank: Int, blasThreadSource: String, blasCore: String, kernelISA: String
    /// Of the convs' and attention's matrix products; the bf16 micro-kernel variant when bf16.
    var precision: String, bf16Kernel: String?
    var steps: Int, trainableParameters: Int, frozenParameters: Int
    /// Summed over ranks (the global batch over the slowest rank's median step).
    var samplesPerSecond: Double
    var msPerStepMedian: Double, msPerStepSlowestRank: Double, msPerStepMean: Double
    /// Rank 0's exclusive time per phase (a conv's GEMMs are in "gemm").
    var phaseMsPerStep: [String: Double]?
    /// GFLOP issued to sgemm per step; their rate inside the GEMM calls; over the whole (median) step.
    var gemmGflopPerStep: Double?, gemmGflopsAchieved: Double?, stepGflopsAchieved: Double?
    /// The same step counted as direct convolutions (PyTorch's FLOP counter's figure) and that count over the
    /// median step: above the sgemm ceiling because Winograd convolutions do fewer multiplies.
    var nominalGflopPerStep: Double?, nominalGflopsPerSecond: Double?
    var sgemmCeilingGflops: Double
    var peakRSSMegabytesPerRankMax: Double, peakRSSMegabytesSum: Double
    /// Rank 0's step memory: the two stack arenas (activations saved for backward; gradients and temporaries).
    var activationArenaMegabytes: Double, gradientArenaMegabytes: Double
    /// With --gemm-shapes: each distinct sgemm call shape, its calls and seconds per step, most time first.
    var gemmShapesPerStep: [GemmShapeStats]?
    var torch: TorchFigure?
}

/// Fixed images, noise and hints (as torch_bench.py: x0 and eps drawn once), fresh timesteps every step.
final class SyntheticBatch {
    let config: ModelConfig, batchSize: Int, rank: Int
    let x0: FloatBuffer, eps: FloatBuffer, xT: FloatBuffer, hint: FloatBuffer
    let schedule = NoiseSchedule()

    init(config: ModelConfig, batchSize: Int, rank: Int) {
        self.config = config; self.batchSize = batchSize; self.rank = rank
        let pixels = batchSize * config.imageSize * config.imageSize
        x0 = FloatBuffer(count: pixels * config.inChannels); eps = FloatBuffer(count: pixels * config.inChannels)
        xT = FloatBuffer(count: pixels * config.inChannels); hint = FloatBuffer(count: pixels * config.hintChannels)
        var rng = RandomStream(UInt64(rank), RandomPurpose.noise.rawValue)
        rng.fillNormal(x0.pointer, count: x0.count)
        rng.fillNormal(eps.pointer, count: eps.count)
        for i in 0..<hint.count { hint.pointer[i] = rng.uniform() > 0.8 ? 1 : 0 }
    }

    /// This step's timesteps (N) and labels (N, or nil without classes).
    func next(step: Int) -> (t: [Int], labels: [Int]?) {
        var rng = RandomStream(UInt64(rank), RandomPurpose.timestep.rawValue, UInt64(step))
        let t = (0..<batchSize).map { _ in rng.int(below: 1000) }
        let labels = config.numClasses > 0 ? (0..<batchSize).map { _ in rng.int(below: config.numClasses + 1) } : nil
        return (t, labels)
    }
}
