// The data-parallel training loop. Every rank holds the frozen weights and a replica of the trainable arena; per
// step it computes gradients on its shard of the global batch, all-reduces the ONE flat gradient buffer, and runs
// AdamW on identical weights. With --simulate-ranks N one process plays N ranks and averages their gradients.
import Crypto
import Foundation
import Datasets
import Distributed
import Kernels
import Model
import SafeTensors

public struct TrainResult: Sendable {
    public let steps: Int
    public let finalLoss: Double
    public let wallSeconds: Double
    public let samplesPerSecond: Double
    public let skippedSteps: Int
    public let stoppedEarly: Bool
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class Trainer {
    public let options: TrainOptions
    public let config: ModelConfig
    public let comm: any Communicator
    public let log: RunLog
    public let model: TrainingModel
    public let outDirectory: URL
    let m: FloatBuffer, v: FloatBuffer
    let assembler: BatchAssembler
    public let dataset: ImageDataset
    public private(set) var state: TrainState
    public let totalSteps: Int
    let schedule: LRSchedule
    let adamConfig: AdamWConfig
    /// Effective number of ranks: MPI ranks times simulated ranks per process.
    public let worldSize: Int
    var injections: [(step: Int, rank: Int?)] = []
    /// Set by the last step when any rank was asked to stop.
    var stopAgreed = false
    /// The hash all ranks agreed on at the last replica check (nil before one ran, or with one rank).
    public private(set) var lastReplicaHash: UInt64?
    /// Called on rank 0 after every `--validation-steps` steps (sampling previews).
    public var validation: ((Trainer, Int) throws -> Void)?
    /// Read before every step's small all-reduce (set by the SIGTERM/SIGINT/SIGUSR1 handler); the ranks stop
    /// together as soon as any of them was asked to.
    public var stopRequested: () -> Bool = { false }
    /// SHA-256 of the frozen base weights (ControlNet training), recorded in checkpoints.
    public let baseSHA256: String?
    public private(set) var currentLR = 0.0

    public init(options: TrainOptions, comm: any Communicator) throws {
        self.options = options
        self.comm = comm
        config = try ModelConfig.named(options.config)
        try options.validate(config: config)
        worldSize = comm.size * options.simulateRanks

        dataset = try Self.loadDataset(options, config: config, split: .train)
        let globalBatch = options.batchSize * worldSize
        guard dataset.count >= globalBatch else {
            throw OptionsError(option: "--batch-size", message: "the global batch (\(options.batchSize) per rank x \(worldSize) ranks = \(globalBatch)) is larger than the \(dataset.count) training images of \(options.data)")
        }
        var hints: HintProvider?
        switch options.mode {
        case .base:
            let base = BaseTraining(config: config)
            if let path = options.base {
                try WeightFile.load(try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)), table: base.unet.table,
                                    into: base.params.pointer, expecting: config)
            } else {
                Initializers.initialize(base.unet.table, base.params.pointer, seed: options.seed)
            }
            model = base
        case .controlnet:
            guard let kind = HintKind(rawValue: options.hint) else {
                throw OptionsError(option: "--hint", message: "unknown hint kind '\(options.hint)'; choose one of "
                                   + HintKind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            hints = HintProvider(dataset: dataset, kind: kind)
            let basePath = options.base!
            let unet = UNet(config: config)
            let weights = FloatBuffer(count: unet.parameterCount)
            let file: SafeTensorsFile
            do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: basePath)) } catch {
                throw OptionsError(option: "--base", message: "\(error)")
            }
            try WeightFile.load(file, table: unet.table, into: weights.pointer, expecting: config)
            model = ControlNetTraining(config: config, base: weights, seed: options.seed)
        }
        m = FloatBuffer(count: model.params.count)
        v = FloatBuffer(count: model.params.count)
        assembler = BatchAssembler(dataset: dataset, hints: hints, config: config, batchSize: options.batchSize,
                                   seed: options.seed, promptDropout: options.promptDropout)
        let sampler = EpochSampler(datasetCount: dataset.count, seed: options.seed, globalBatch: globalBatch)
        if let steps = options.maxSteps {
            totalSteps = steps
        } else {
            let epochs = options.epochs ?? 1
            totalSteps = max(1, Int((epochs * Double(sampler.batchesPerEpoch) / Double(options.gradAccum)).rounded()))
        }
        schedule = LRSchedule(base: options.lr, warmup: options.warmupSteps, total: totalSteps,
                              kind: options.lrSchedule, minFraction: options.minLRFraction)
        adamConfig = AdamWConfig(weightDecay: Float(options.weightDecay))
        state = TrainState(sampler: sampler)
        injections = options.injectNonfinite.map { spec in
            let parts = spec.split(separator: ":").map { Int($0)! }
            return (parts[0], parts.count > 1 ? parts[1] : nil)
        }
        // Only now, with every input read and checked, does the run directory appear.
        outDirectory = URL(fileURLWithPath: options.out)
        do { try FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true) } catch {
            throw OptionsError(option: "--out", message: "cannot create \(outDirectory.path): \(error.localizedDescription)")
        }
        log = try RunLog(rank: comm.rank, metricsURL: outDirectory.appendingPathComponent("metrics.jsonl"),
                         append: options.resume != nil)
        baseSHA256 = model.frozen.map { Self.sha256($0) }
        // Identical starting point everywhere: rank 0's weights win.
        if comm.size > 1 {
            if let frozen = model.frozen { try comm.broadcast(frozen.pointer, count: frozen.count, root: 0) }
            try comm.broadcast(model.params.pointer, count: model.params.count, root: 0)
        }
    }

    /// The dataset split sized for the model: `--resize` resamples images whose size differs from the config's.
    public static func loadDataset(_ options: TrainOptions, config: ModelConfig, split: DatasetSplit) throws -> ImageDataset {
        var data = try DatasetCatalog.load(options.data, split: split, dataDirectory: URL(fileURLWithPath: options.dataDir))
        guard data.channels == config.inChannels else {
            throw OptionsError(option: "--data", message: "\(options.data) has \(data.channels)-channel images but config '\(options.config)' expects \(config.inChannels)")
        }
        if data.height != config.imageSize || data.width != config.imageSize {
            guard options.resize else {
                throw OptionsError(option: "--data", message: "\(options.data) has \(data.height)x\(data.width) images but config '\(options.config)' expects \(config.imageSize)x\(config.imageSize); pass --resize to resample them")
            }
            data = data.resized(height: config.imageSize, width: config.imageSize)
        }
        return data
    }

    /// Optimizer state, for checkpoints.
    public var optimizerM: FloatBuffer { m }
    public var optimizerV: FloatBuffer { v }

    static func sha256(_ buffer: FloatBuffer) -> String {
        SHA256.hash(data: UnsafeRawBufferPointer(buffer.buffer)).map { String(format: "%02x", $0) }.joined()
    }

    /// Continues from a checkpoint after checking it belongs to this run (config, mode, base weights, size).
    /// Nothing is written before these checks pass. The world size may differ: the data position carries over.
    public func resume(from loaded: CheckpointStore.Loaded) throws {
        let m = loaded.manifest, path = loaded.directory.appendingPathComponent(CheckpointManifest.fileName).path
        if m.mode != options.mode {
            throw CheckpointError(path, "is a \(m.mode.rawValue) checkpoint; this run trains \(options.mode.rawValue)")
        }
        if m.config != config.json {
            throw CheckpointError(path, "was made with another model config:\n  checkpoint: \(m.config)\n  this run:   \(config.json)")
        }
        if m.baseSHA256 != baseSHA256 {
            throw CheckpointError(path, "was trained on another base model (SHA-256 \(m.baseSHA256 ?? "none") vs \(baseSHA256 ?? "none") of \(options.base ?? "-")); resume with the base it was made with")
        }
        guard m.trainableCount == model.params.count else {
            throw CheckpointError(path, "holds \(m.trainableCount) trainable parameters; this model has \(model.params.count)")
        }
        if m.options.seed != options.seed {
            throw CheckpointError(path, "was made with --seed \(m.options.seed); resuming with --seed \(options.seed) would change the data order and noise")
        }
        loaded.params.withUnsafeBufferPointer { model.params.pointer.update(from: $0.baseAddress!, count: $0.count) }
        loaded.m.withUnsafeBufferPointer { self.m.pointer.update(from: $0.baseAddress!, count: $0.count) }
        loaded.v.withUnsafeBufferPointer { self.v.pointer.update(from: $0.baseAddress!, count: $0.count) }
        var restored = m.state
        let globalBatch = options.batchSize * worldSize
        let old = m.state.sampler
        do {
            restored.sampler = try EpochSampler(datasetCount: dataset.count, seed: options.seed, globalBatch: globalBatch,
                                                epoch: old.epoch, index: old.index)
        } catch {
            // The new global batch no longer fits in what is left of the epoch: continue with the next one.
            restored.sampler = try EpochSampler(datasetCount: dataset.count, seed: options.seed, globalBatch: globalBatch,
                                                epoch: old.epoch + 1, index: 0)
        }
        state = restored
        let reshard = m.worldSize != comm.size ? " (resharded from \(m.worldSize) to \(comm.size) ranks)" : ""
        log.info("resumed from \(loaded.directory.path) at step \(state.step), epoch \(state.sampler.epoch)\(reshard)")
    }

    public var allReduceBytesPerStep: Int { 4 * model.params.count }

    public func describe() -> String {
        let trainable = model.params.count, frozen = model.frozen?.count ?? 0
        return """
        resolved options: \(options.jsonDescription)
        model config: \(config.json)
        mode \(options.mode.rawValue): \(trainable) trainable parameters, \(frozen) frozen
        world: \(comm.size) process(es) x \(options.simulateRanks) simulated = \(worldSize) rank(s), backend \(comm.backendName)
        data: \(dataset.name), \(dataset.count) training images; global batch \(options.batchSize * worldSize) (\(options.batchSize) per rank) x \(options.gradAccum) accumulation
        steps: \(totalSteps) (\(state.sampler.batchesPerEpoch) global batches per epoch)
        all-reduce per step: 1 buffer of \(trainable) floats = \(allReduceBytesPerStep) bytes
        """
    }

    /// One optimizer step (gradAccum micro-steps). Returns the mean loss over ranks, or nil when skipped.
    func trainStep() throws -> (loss: Double, gradNorm: Double, lr: Double)? {
        let step = state.step + 1
        let sim = options.simulateRanks, accum = options.gradAccum, B = options.batchSize
        model.grads.zero()
        var lossSum = 0.0
        for micro in 0..<accum {
            let global = state.sampler.nextGlobalBatch()
            for local in 0..<sim {
                let rank = comm.rank * sim + local
                let shard = EpochSampler.shard(global, rank: rank, worldSize: worldSize)
                let batch = assembler.assemble(indices: shard, firstSlot: rank * B, step: step, micro: micro)
                lossSum += Double(model.accumulate(batch, lossScale: 1 / Float(accum * sim)))
            }
        }
        for (s, r) in injections where s == step && (r == nil || r == comm.rank) { model.grads.pointer[0] = .nan }
        let grads = model.grads
        let localBad = !lossSum.isFinite || !Elementwise.allFinite(count: grads.count, grads.pointer)
        var small = [lossSum / Double(accum * sim), localBad ? 1 : 0, stopRequested() ? 1 : 0]
        try comm.allReduce(&small, op: .sum)
        state.step = step
        stopAgreed = small[2] > 0
        if small[1] > 0 {
            state.skippedTotal += 1; state.consecutiveSkips += 1
            log.warn("step \(step) skipped: non-finite loss or gradient on \(Int(small[1])) rank(s) (\(state.consecutiveSkips) in a row)")
            if state.consecutiveSkips >= 10 {
                throw TrainingError("aborting: 10 consecutive steps had a non-finite loss or gradient (last at step \(step)); lower --lr, set --max-grad-norm, or check the data")
            }
            return nil
        }
        state.consecutiveSkips = 0
        try comm.allReduceAverage(grads.pointer, count: grads.count)
        let norm = Elementwise.sumOfSquares(count: grads.count, grads.pointer).squareRoot()
        if let maxNorm = options.maxGradNorm, norm > maxNorm {
            Elementwise.scale(count: grads.count, alpha: Float(maxNorm / (norm + 1e-6)), x: grads.pointer)
        }
        state.adamStep += 1
        let lr = schedule.lr(at: step)
        currentLR = lr
        AdamW.step(count: grads.count, params: model.params.pointer, grads: grads.pointer, m: m.pointer, v: v.pointer,
                   lr: Float(lr), step: state.adamStep, config: adamConfig)
        return (small[0] / Double(comm.size), norm, lr)
    }

    /// Checks that every rank holds bit-identical trainable weights (a cheap hash, all-reduced min and max).
    public func verifyReplicas() throws {
        guard comm.size > 1 else { return }
        let h = Double(Checksum.fnv1a(model.params.buffer) & ((1 << 52) - 1))
        var lo = [h], hi = [h]
        try comm.allReduce(&lo, op: .min); try comm.allReduce(&hi, op: .max)
        lastReplicaHash = UInt64(lo[0])
        if lo[0] != hi[0] {
            throw TrainingError("rank \(comm.rank): trainable weights differ across ranks at step \(state.step) (replica hashes \(Int(lo[0]))...\(Int(hi[0]))); the ranks diverged - check that every node runs the same binary and data")
        }
    }

    public func run() throws -> TrainResult {
        log.info(describe())
        let start = Date()
        var timedSteps = 0, timedSeconds = 0.0, lastLoss = Double.nan
        var stoppedEarly = false
        let samplesPerStep = Double(options.batchSize * worldSize * options.gradAccum)
        while state.step < totalSteps {
            let t0 = Date()
            let result = try trainStep()
            let dt = Date().timeIntervalSince(t0)
            if state.step > 1 || totalSteps == 1 { timedSteps += 1; timedSeconds += dt }
            let rate = timedSteps > 0 ? samplesPerStep * Double(timedSteps) / timedSeconds : samplesPerStep / dt
            if let result {
                lastLoss = result.loss
                if state.step % options.logEvery == 0 || state.step == totalSteps || state.step == 1 {
                    log.metric(["step": state.step, "loss": result.loss, "lr": result.lr, "grad_norm": result.gradNorm,
                                "samples_per_s": rate, "skipped": state.skippedTotal, "epoch": state.sampler.epoch,
                                "time_s": Date().timeIntervalSince(start)])
                }
            }
            let eta = Double(totalSteps - state.step) * (timedSteps > 0 ? timedSeconds / Double(timedSteps) : dt)
            log.progress(step: state.step, total: totalSteps, loss: lastLoss, samplesPerSecond: rate, eta: eta,
                         force: state.step % options.logEvery == 0 || state.step == totalSteps)
            if state.step % options.checksumEvery == 0 || state.step == totalSteps { try verifyReplicas() }
            if let every = options.validationSteps, state.step % every == 0, comm.rank == 0, let validation {
                try validation(self, state.step)
            }
            let stop = stopAgreed
            let due = options.checkpointEvery.map { state.step % $0 == 0 || state.step == totalSteps } ?? false
            if stop || due {
                let t0 = Date()
                let dir = try CheckpointStore.write(self)
                log.info(String(format: "checkpoint %@ written in %.2f s%@", dir.lastPathComponent,
                                Date().timeIntervalSince(t0), stop ? " (stop requested)" : ""))
            }
            if stop && state.step < totalSteps {
                log.info("stopping at step \(state.step) on request (checkpoint written); resume with --resume latest")
                stoppedEarly = true
                break
            }
        }
        let wall = Date().timeIntervalSince(start)
        if comm.rank == 0 {
            let name = options.mode == .base ? "unet.safetensors" : "controlnet.safetensors"
            try model.saveTrainable(to: outDirectory.appendingPathComponent(name),
                                    metadata: ["steps": "\(state.step)", "options": options.jsonDescription])
        }
        let rate = timedSteps > 0 ? samplesPerStep * Double(timedSteps) / timedSeconds : 0
        if let frozen = model.frozen {
            // The base must come out exactly as it went in: a cheap proof that nothing wrote to it.
            guard Self.sha256(frozen) == baseSHA256 else {
                throw TrainingError("rank \(comm.rank): the frozen base weights changed during training (SHA-256 \(Self.sha256(frozen)) vs \(baseSHA256 ?? "")); this is a bug")
            }
            log.info("frozen base unchanged: SHA-256 \(baseSHA256 ?? "")")
        }
        if let h = lastReplicaHash {
            log.info("replica check: all \(comm.size) ranks hold bit-identical trainable weights (hash \(String(h, radix: 16)))")
        }
        log.info(String(format: "done: %d steps in %@, final loss %.4f, %.1f samples/s, %d skipped",
                        state.step, RunLog.duration(wall), lastLoss, rate, state.skippedTotal))
        return TrainResult(steps: state.step, finalLoss: lastLoss, wallSeconds: wall, samplesPerSecond: rate,
                           skippedSteps: state.skippedTotal, stoppedEarly: stoppedEarly)
    }
}

/// Where a run is: everything besides the weights and optimizer moments needed to continue exactly.
public struct TrainState: Codable, Sendable, Equatable {
    public var step = 0              // optimizer steps taken (skipped ones included)
    public var adamStep = 0          // AdamW's step count (skipped steps excluded, as PyTorch's GradScaler does)
    public var skippedTotal = 0
    public var consecutiveSkips = 0
    public var sampler: EpochSampler
    enum CodingKeys: String, CodingKey {
        case step, sampler
        case adamStep = "adam_step", skippedTotal = "skipped_total", consecutiveSkips = "consecutive_skips"
    }
    public init(sampler: EpochSampler) { self.sampler = sampler }
}

public enum Checksum {
    /// FNV-1a over the bytes of a Float buffer, 8 bytes at a time (fast enough for replica checks).
    public static func fnv1a(_ buffer: UnsafeMutableBufferPointer<Float>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let raw = UnsafeRawBufferPointer(buffer)
        let words = raw.count / 8
        for i in 0..<words {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01b3
        }
        for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3 }
        return h
    }
}
