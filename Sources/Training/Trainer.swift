// A training run, owned by the library: it reads and checks every input, resumes from a checkpoint when asked,
// runs the one TrainingStep until the last step or an agreed stop, writes checkpoints and validation previews on
// schedule, and leaves the trained weights in the run directory. The command line only parses flags, makes the
// communicator and installs the signal handlers.
import Crypto
import Foundation
import Datasets
import Distributed
import Kernels
import Model

public struct TrainResult: Sendable {
    public let steps: Int
    public let finalLoss: Double
    public let wallSeconds: Double
    public let samplesPerSecond: Double
    public let skippedSteps: Int
    public let stoppedEarly: Bool
}

public final class Trainer {
    public let options: TrainOptions
    public let config: ModelConfig
    public let comm: any Communicator
    public let log: RunLog
    /// The one training step; it owns the model and the optimizer state.
    public let step: TrainingStep
    public let batches: DatasetBatches
    public let outDirectory: URL
    public let totalSteps: Int
    /// SHA-256 of the frozen base weights (ControlNet training), recorded in checkpoints.
    public let baseSHA256: String?
    /// The hash all ranks agreed on at the last replica check (nil before one ran, or with one rank).
    public private(set) var lastReplicaHash: UInt64?
    private var currentLR = 0.0

    public var model: TrainingModel { step.model }
    public var dataset: ImageDataset { batches.dataset }
    /// Effective number of ranks: MPI ranks times simulated ranks per process.
    public var worldSize: Int { step.worldSize }
    /// Where the run is: the step's counters and the data order.
    public var state: TrainState { TrainState(counters: step.counters, sampler: batches.sampler) }

    public init(options: TrainOptions, comm: any Communicator) throws {
        self.options = options
        self.comm = comm
        config = try ModelConfig.named(options.config)
        try options.validate(config: config)
        let worldSize = comm.size * options.simulateRanks

        let dataset: ImageDataset
        do {
            dataset = try DatasetCatalog.load(options.dataSpec, split: .train, imageSize: config.imageSize,
                                              channels: config.inChannels)
        } catch {
            throw OptionsError(option: "--data", message: "\(error)")
        }
        let globalBatch = options.batchSize * worldSize
        guard dataset.count >= globalBatch else {
            throw OptionsError(option: "--batch-size", message: "the global batch (\(options.batchSize) per rank x \(worldSize) ranks = \(globalBatch)) is larger than the \(dataset.count) training images of \(options.data)")
        }
        var hints: HintProvider?
        if options.mode == .controlnet {
            guard let kind = HintKind(rawValue: options.hint) else {
                throw OptionsError(option: "--hint", message: "unknown hint kind '\(options.hint)'; choose one of "
                                   + HintKind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            hints = HintProvider(dataset: dataset, kind: kind)
        }
        let model = try TrainingModels.make(options, config: config)
        let sampler = EpochSampler(datasetCount: dataset.count, seed: options.seed, globalBatch: globalBatch)
        if let steps = options.maxSteps {
            totalSteps = steps
        } else {
            let epochs = options.epochs ?? 1
            totalSteps = max(1, Int((epochs * Double(sampler.batchesPerEpoch) / Double(options.gradAccum)).rounded()))
        }
        step = TrainingStep(model: model, comm: comm, settings: options.stepSettings(totalSteps: totalSteps))
        batches = DatasetBatches(dataset: dataset, hints: hints, config: config, batchSize: options.batchSize,
                                 seed: options.seed, promptDropout: options.promptDropout, sampler: sampler)
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

    static func sha256(_ buffer: FloatBuffer) -> String {
        SHA256.hash(data: UnsafeRawBufferPointer(buffer.buffer)).map { String(format: "%02x", $0) }.joined()
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

    // MARK: resuming

    /// Continues from a checkpoint after checking it belongs to this run (config, mode, base weights, size, seed).
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
        loaded.m.withUnsafeBufferPointer { step.m.pointer.update(from: $0.baseAddress!, count: $0.count) }
        loaded.v.withUnsafeBufferPointer { step.v.pointer.update(from: $0.baseAddress!, count: $0.count) }
        let globalBatch = options.batchSize * worldSize
        let old = m.state.sampler
        do {
            batches.sampler = try EpochSampler(datasetCount: dataset.count, seed: options.seed, globalBatch: globalBatch,
                                               epoch: old.epoch, index: old.index)
        } catch {
            // The new global batch no longer fits in what is left of the epoch: continue with the next one.
            batches.sampler = try EpochSampler(datasetCount: dataset.count, seed: options.seed, globalBatch: globalBatch,
                                               epoch: old.epoch + 1, index: 0)
        }
        step.counters = m.state.counters
        let reshard = m.worldSize != comm.size ? " (resharded from \(m.worldSize) to \(comm.size) ranks)" : ""
        log.info("resumed from \(loaded.directory.path) at step \(step.counters.step), epoch \(batches.sampler.epoch)\(reshard)")
    }

    /// `--resume`: the checkpoint it names, checked and loaded (no-op without the option, or when "latest" finds none).
    func resumeIfAsked() throws {
        guard let spec = options.resume else { return }
        let started = Date()
        if let loaded = try CheckpointStore.resolve(spec, out: outDirectory, note: { log.info($0) }) {
            try resume(from: loaded)
            log.info(String(format: "checkpoint read, verified and loaded in %.2f s", Date().timeIntervalSince(started)))
        }
    }

    // MARK: the run

    /// Checks that every rank holds bit-identical trainable weights (a cheap hash, all-reduced min and max).
    public func verifyReplicas() throws {
        guard comm.size > 1 else { return }
        let h = Double(Checksum.fnv1a(model.params.buffer) & ((1 << 52) - 1))
        var lo = [h], hi = [h]
        try comm.allReduce(&lo, op: .min); try comm.allReduce(&hi, op: .max)
        lastReplicaHash = UInt64(lo[0])
        if lo[0] != hi[0] {
            throw TrainingError("rank \(comm.rank): trainable weights differ across ranks at step \(step.counters.step) (replica hashes \(Int(lo[0]))...\(Int(hi[0]))); the ranks diverged - check that every node runs the same binary and data")
        }
    }

    /// Writes a checkpoint of the current state (collective).
    @discardableResult
    public func writeCheckpoint() throws -> URL {
        let snapshot = CheckpointSnapshot(params: model.params, m: step.m, v: step.v, state: state, options: options,
                                          config: config, totalSteps: totalSteps, lr: currentLR,
                                          baseSHA256: baseSHA256)
        return try CheckpointStore.write(snapshot, comm: comm, out: outDirectory, log: log)
    }

    /// Resumes if asked, then trains to the last step or until every rank agrees to stop (any rank's
    /// `stopRequested()`, read once per step); writes the trainable weights at the end.
    public func run(stopRequested: () -> Bool = { false }) throws -> TrainResult {
        try resumeIfAsked()
        log.info(describe())
        let preview = try makeValidationPreview()
        let start = Date()
        var timedSteps = 0, timedSeconds = 0.0, lastLoss = Double.nan
        var stoppedEarly = false
        let samplesPerStep = Double(options.batchSize * worldSize * options.gradAccum)
        while step.counters.step < totalSteps {
            let t0 = Date()
            let outcome = try step.run(batches, stopRequested: stopRequested())
            let dt = Date().timeIntervalSince(t0)
            let n = outcome.step
            if n > 1 || totalSteps == 1 { timedSteps += 1; timedSeconds += dt }
            let rate = timedSteps > 0 ? samplesPerStep * Double(timedSteps) / timedSeconds : samplesPerStep / dt
            if let loss = outcome.loss, let lr = outcome.lr, let norm = outcome.gradNorm {
                lastLoss = loss
                currentLR = lr
                if n % options.logEvery == 0 || n == totalSteps || n == 1 {
                    log.metric(["step": n, "loss": loss, "lr": lr, "grad_norm": norm, "samples_per_s": rate,
                                "skipped": step.counters.skippedTotal, "epoch": batches.sampler.epoch,
                                "time_s": Date().timeIntervalSince(start)])
                }
            } else {
                log.warn("step \(n) skipped: non-finite loss or gradient on \(outcome.nonFiniteRanks) rank(s) (\(step.counters.consecutiveSkips) in a row)")
            }
            let eta = Double(totalSteps - n) * (timedSteps > 0 ? timedSeconds / Double(timedSteps) : dt)
            log.progress(step: n, total: totalSteps, loss: lastLoss, samplesPerSecond: rate, eta: eta,
                         force: n % options.logEvery == 0 || n == totalSteps)
            if n % options.checksumEvery == 0 || n == totalSteps { try verifyReplicas() }
            if let every = options.validationSteps, n % every == 0, let preview { try validate(preview, step: n) }
            let due = options.checkpointEvery.map { n % $0 == 0 || n == totalSteps } ?? false
            if outcome.stopAgreed || due {
                let t0 = Date()
                // A rank stuck writing (a hung file system) is reported and timed out like a stalled collective.
                let dir = try comm.watched("checkpoint of step \(n)") { try writeCheckpoint() }
                log.info(String(format: "checkpoint %@ written in %.2f s%@", dir.lastPathComponent,
                                Date().timeIntervalSince(t0), outcome.stopAgreed ? " (stop requested)" : ""))
            }
            if outcome.stopAgreed && n < totalSteps {
                log.info("stopping at step \(n) on request (checkpoint written); resume with --resume latest")
                stoppedEarly = true
                break
            }
        }
        let wall = Date().timeIntervalSince(start)
        if comm.rank == 0 {
            let name = options.mode == .base ? "unet.safetensors" : "controlnet.safetensors"
            try model.saveTrainable(to: outDirectory.appendingPathComponent(name),
                                    metadata: ["steps": "\(step.counters.step)", "options": options.jsonDescription])
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
        let c = step.counters
        log.info(String(format: "done: %d steps in %@, final loss %.4f, %.1f samples/s, %d skipped",
                        c.step, RunLog.duration(wall), lastLoss, rate, c.skippedTotal))
        return TrainResult(steps: c.step, finalLoss: lastLoss, wallSeconds: wall, samplesPerSecond: rate,
                           skippedSteps: c.skippedTotal, stoppedEarly: stoppedEarly)
    }

    // MARK: validation previews

    /// Rank 0's previewer when --validation-steps is set: held-out hints of the test split (ControlNets), or
    /// unconditional samples (base).
    func makeValidationPreview() throws -> ValidationPreview? {
        guard options.validationSteps != nil, comm.rank == 0 else { return nil }
        var hints: HintSet?
        if options.mode == .controlnet {
            let kind = HintKind(rawValue: options.hint).map { $0.isDeterministic ? $0 : .canny } ?? .canny
            hints = try HeldOutHints.load(options.dataSpec, split: .test, kind: kind, count: options.validationCount,
                                          imageSize: config.imageSize, channels: config.inChannels, seed: options.seed)
        }
        return try ValidationPreview(model: model, hints: hints, count: options.validationCount, seed: options.seed,
                                     directory: outDirectory.appendingPathComponent("validation"))
    }

    func validate(_ preview: ValidationPreview, step n: Int) throws {
        let r = try preview.run(step: n)
        let f1 = r.scores.map { String(format: "; edge F1 exact %.3f, 1-px %.3f", $0.exact.f1, $0.onePixel.f1) } ?? ""
        log.info("validation: \(r.url.path)\(f1)")
        log.metric(["step": n, "validation_png": r.url.path, "edge_f1_exact": r.scores?.exact.f1 ?? -1,
                    "edge_f1_1px": r.scores?.onePixel.f1 ?? -1])
    }
}

/// Where a run is: everything besides the weights and optimizer moments needed to continue exactly.
public struct TrainState: Codable, Sendable, Equatable {
    public var counters: StepCounters
    public var sampler: EpochSampler
    public var step: Int { counters.step }
    public var adamStep: Int { counters.adamStep }
    public var skippedTotal: Int { counters.skippedTotal }

    public init(counters: StepCounters = StepCounters(), sampler: EpochSampler) {
        self.counters = counters; self.sampler = sampler
    }

    // Flat keys, as the checkpoint format has them.
    enum CodingKeys: String, CodingKey {
        case step, sampler
        case adamStep = "adam_step", skippedTotal = "skipped_total", consecutiveSkips = "consecutive_skips"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        counters = StepCounters()
        counters.step = try c.decode(Int.self, forKey: .step)
        counters.adamStep = try c.decode(Int.self, forKey: .adamStep)
        counters.skippedTotal = try c.decode(Int.self, forKey: .skippedTotal)
        counters.consecutiveSkips = try c.decode(Int.self, forKey: .consecutiveSkips)
        sampler = try c.decode(EpochSampler.self, forKey: .sampler)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(counters.step, forKey: .step)
        try c.encode(counters.adamStep, forKey: .adamStep)
        try c.encode(counters.skippedTotal, forKey: .skippedTotal)
        try c.encode(counters.consecutiveSkips, forKey: .consecutiveSkips)
        try c.encode(sampler, forKey: .sampler)
    }
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
