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
    /// What the run trains on, recorded in checkpoints and checked on resume.
    public let fingerprint: DataFingerprint
    /// What the network predicts (recorded in the weights).
    public let prediction: PredictionType
    /// The run's identity, kept across resumes: retention deletes only this run's checkpoints.
    public private(set) var runID = UUID().uuidString
    /// The hash all ranks agreed on at the last replica check (nil before one ran, or with one rank).
    public private(set) var lastReplicaHash: UInt64?
    private var currentLR = 0.0
    private var trainSecondsBefore = 0.0
    /// Rank 0's hold on the run directory (nil on other ranks, and once the run is over).
    private var directory: RunDirectory?
    private var pendingResume: CheckpointStore.Loaded?
    private let validationHints: HintSet?
    private var notes: [String] = []

    public var model: TrainingModel { step.model }
    public var samples: SampleSource { batches.samples }
    /// Effective number of ranks: MPI ranks times simulated ranks per process.
    public var worldSize: Int { step.worldSize }
    /// Where the run is: the step's counters and the data order.
    public var state: TrainState {
        TrainState(counters: step.counters, sampler: batches.sampler, trainSeconds: trainSecondsBefore)
    }

    /// Reads and checks every input (options agreed by every rank, data, weights, memory), then claims the run
    /// directory and finds the checkpoint to resume from. Nothing is written before the inputs pass.
    public init(options: TrainOptions, comm: any Communicator) throws {
        self.options = options
        self.comm = comm
        config = try ModelConfig.named(options.config)
        try options.validate(config: config)
        try RankAgreement.check(RankAgreement.optionValues(options), comm: comm, what: RankAgreement.flag)
        let worldSize = comm.size * options.simulateRanks
        outDirectory = URL(fileURLWithPath: options.out)
        try Self.guardPaths(options, out: outDirectory)

        let rank = comm.rank
        let inputs = try TrainingInputs.load(options, config: config, worldSize: worldSize) { line in
            if rank == 0 { print(line); fflush(nil) }
        }
        fingerprint = inputs.fingerprint
        let sampler = EpochSampler(datasetCount: inputs.samples.count, seed: options.seed,
                                   globalBatch: options.batchSize * worldSize)
        if let steps = options.maxSteps {
            totalSteps = steps
        } else {
            let epochs = options.epochs ?? 1
            totalSteps = max(1, Int((epochs * Double(sampler.batchesPerEpoch) / Double(options.gradAccum)).rounded()))
        }
        prediction = inputs.prediction
        step = TrainingStep(model: inputs.model,
                            objective: DiffusionObjective(prediction: inputs.prediction, snrGamma: options.snrGamma,
                                                          consistency: options.consistency),
                            comm: comm, settings: options.stepSettings(totalSteps: totalSteps))
        batches = DatasetBatches(samples: inputs.samples, withHints: options.mode == .controlnet, config: config,
                                 batchSize: options.batchSize, seed: options.seed,
                                 promptDropout: options.promptDropout, sampler: sampler)
        if options.consistency != nil && options.consistencyFraction > 0 {
            batches.lowTimesteps = (Int((options.consistencyFraction * Double(options.batchSize)).rounded(.up)),
                                    options.consistencyMaxT)
        }
        baseSHA256 = inputs.model.frozen.map { Self.sha256($0) }
        validationHints = try Self.loadValidationHints(options, config: config, vocabulary: inputs.samples.vocabulary)

        // Only now, with every input read and checked, is the run directory claimed.
        var notes: [String] = []
        if comm.rank == 0 {
            directory = try RunDirectory.claim(outDirectory, resume: options.resume != nil,
                                               overwrite: options.overwrite, log: { notes.append($0) })
        } else {
            try? FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true)
        }
        if let spec = options.resume {
            switch try CheckpointStore.resolve(spec, out: outDirectory) {
            case .found(let loaded, let skipped):
                notes += skipped.map { "resume: skipped invalid checkpoint: \($0)" }
                pendingResume = loaded
            case .none(let incomplete):
                notes += incomplete.map { "resume: \($0) has no manifest (an interrupted write); not a checkpoint" }
                notes.append("resume: no checkpoint under \(CheckpointStore.root(outDirectory).path); starting fresh")
            }
        }
        // The checkpoint must belong to this run before anything (metrics.jsonl) is touched for the resume.
        if let loaded = pendingResume {
            try Self.checkBelongs(loaded, options: options, config: config, baseSHA256: baseSHA256,
                                  trainable: inputs.model.params.count, fingerprint: fingerprint)
            try Self.checkResumePoint(loaded, options: options, totalSteps: totalSteps, worldSize: worldSize,
                                      out: outDirectory)
        }
        // Every rank must continue from the same checkpoint (they may see different file systems).
        try RankAgreement.check([("resume", pendingResume.map { "\($0.manifest.step) \($0.manifest.runID ?? "")" } ?? "none")],
                                comm: comm, what: { _ in "--resume" })
        log = try RunLog(rank: comm.rank, metricsURL: outDirectory.appendingPathComponent("metrics.jsonl"),
                         keepStepsThrough: options.resume == nil ? nil : pendingResume?.manifest.step ?? 0)
        if options.zero == 1 && comm.size == 1 {
            notes.append("--zero 1: the AdamW moments are sharded across MPI processes; with one process (simulated ranks share its memory) they stay whole, with the same results")
        }
        self.notes = notes
        // Identical starting point everywhere: rank 0's weights win.
        if comm.size > 1 {
            if let frozen = inputs.model.frozen { try comm.broadcast(frozen.pointer, count: frozen.count, root: 0) }
            try comm.broadcast(inputs.model.params.pointer, count: inputs.model.params.count, root: 0)
        }
        if let loaded = pendingResume { try resume(from: loaded) }
        pendingResume = nil   // the arrays it holds are copied into the model and optimizer
    }

    /// The files the run writes may not be the files it reads.
    static func guardPaths(_ o: TrainOptions, out: URL) throws {
        try PathGuard.checkKinds([("--out", o.out)], directories: [o.out])
        var inputs: [(String, String)] = []
        if let b = o.base { inputs.append(("--base", b)) }
        if let i = o.initFrom { inputs.append(("--init-from", i)) }
        inputs += o.dataSpec.inputFiles.map { ("--data", $0) }
        if let v = o.validationData { inputs += o.spec(for: v).inputFiles.map { ("--validation-data", $0) } }
        if FileManager.default.fileExists(atPath: o.config) { inputs.append(("--config", o.config)) }
        let outputs = RunDirectory.outputNames.map { ("--out", out.appendingPathComponent($0).path) }
        let directories = Set(["checkpoints", "validation"].map { out.appendingPathComponent($0).path })
        try PathGuard.check(outputs: outputs, inputs: inputs, directories: directories)
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
        mode \(options.mode.rawValue): \(trainable) trainable parameters, \(frozen) frozen; \(prediction.rawValue) prediction\(options.snrGamma.map { ", min-SNR-\($0) weights" } ?? "")\(options.consistency.map { ", consistency loss \($0.weight) at t <= \($0.maxT)" } ?? "")\(options.emaDecay.map { ", EMA \($0)" } ?? "")
        optimizer: AdamW moments \(step.optimizerSlice.count == trainable ? "on every rank" : "sharded (ZeRO-1): \(step.optimizerSlice.count) of \(trainable) on this rank") (\(step.optimizerBytes / 1_048_576) MB)
        world: \(comm.size) process(es) x \(options.simulateRanks) simulated = \(worldSize) rank(s), backend \(comm.backendName)
        data: \(samples.name), \(samples.count) training images\(samples.vocabulary.map { ", \($0.count) prompts as labels" } ?? ""); global batch \(options.batchSize * worldSize) (\(options.batchSize) per rank) x \(options.gradAccum) accumulation
        steps: \(totalSteps) (\(state.sampler.batchesPerEpoch) global batches per epoch)
        all-reduce per step: 1 buffer of \(trainable) floats = \(allReduceBytesPerStep) bytes
        """
    }

    // MARK: resuming (the checks are in ResumeChecks.swift)

    /// Continues from a checkpoint (checked by checkBelongs): weights, moments, counters and the data position.
    func resume(from loaded: CheckpointStore.Loaded) throws {
        let m = loaded.manifest
        loaded.params.withUnsafeBufferPointer { model.params.pointer.update(from: $0.baseAddress!, count: $0.count) }
        // The moments this rank holds: all of them, or its ZeRO-1 slice (at any earlier world size or sharding).
        let mine = step.optimizerSlice
        loaded.m.withUnsafeBufferPointer { step.m.pointer.update(from: $0.baseAddress! + mine.lowerBound, count: mine.count) }
        loaded.v.withUnsafeBufferPointer { step.v.pointer.update(from: $0.baseAddress! + mine.lowerBound, count: mine.count) }
        if let ema = step.ema {
            if let saved = loaded.ema {
                saved.withUnsafeBufferPointer { ema.pointer.update(from: $0.baseAddress!, count: $0.count) }
            } else {
                step.resetEMA()
                notes.append("resume: \(loaded.directory.lastPathComponent) holds no EMA; the EMA starts from its weights")
            }
        }
        let globalBatch = options.batchSize * worldSize
        let old = m.state.sampler
        do {
            batches.sampler = try EpochSampler(datasetCount: samples.count, seed: options.seed, globalBatch: globalBatch,
                                               epoch: old.epoch, index: old.index)
        } catch {
            // The new global batch no longer fits in what is left of the epoch: continue with the next one.
            batches.sampler = try EpochSampler(datasetCount: samples.count, seed: options.seed, globalBatch: globalBatch,
                                               epoch: old.epoch + 1, index: 0)
        }
        step.counters = m.state.counters
        trainSecondsBefore = m.state.trainSeconds
        currentLR = m.lrSchedule.current
        if let id = m.runID { runID = id }
        let reshard = m.worldSize != comm.size ? " (resharded from \(m.worldSize) to \(comm.size) ranks)" : ""
        notes.append("RESUMING from \(loaded.directory.path) at step \(step.counters.step) of \(totalSteps), epoch \(batches.sampler.epoch)\(reshard)")
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
    public func writeCheckpoint(trainSeconds: Double) throws -> URL {
        var st = state
        st.trainSeconds = trainSeconds
        let snapshot = CheckpointSnapshot(params: model.params, m: step.m, v: step.v, optimizerSlice: step.optimizerSlice,
                                          ema: step.ema, state: st, options: options,
                                          config: config, totalSteps: totalSteps, lr: currentLR,
                                          baseSHA256: baseSHA256, runID: runID, data: fingerprint)
        return try CheckpointStore.write(snapshot, comm: comm, out: outDirectory, log: log)
    }

    func writeStatus(_ s: RunStatus.State, trainSeconds: Double, checkpoint: URL? = nil, message: String? = nil) throws {
        guard comm.rank == 0 else { return }
        try RunStatus(state: s, step: step.counters.step, totalSteps: totalSteps, checkpoint: checkpoint?.path,
                      trainSeconds: trainSeconds, message: message).write(to: outDirectory)
    }

    /// Trains to the last step, or until every rank agrees to stop (any rank's `stopRequested()`, read between
    /// micro-steps and once per step); writes checkpoints, previews and OUT/status.json, and the trainable
    /// weights when the run is complete. A failure is recorded in status.json before it is rethrown.
    public func run(stopRequested: () -> Bool = { false }) throws -> TrainResult {
        let started = Date()
        defer { directory = nil }   // the run is over: release the directory's lock
        do {
            return try train(stopRequested: stopRequested, started: started)
        } catch {
            try? writeStatus(.failed, trainSeconds: trainSecondsBefore + Date().timeIntervalSince(started),
                             message: "\(error)")
            throw error
        }
    }

    private func train(stopRequested: () -> Bool, started start: Date) throws -> TrainResult {
        for n in notes { log.info(n) }
        notes = []
        log.info(describe())
        try writeStatus(.running, trainSeconds: trainSecondsBefore)
        let preview = try makeValidationPreview()
        var timedSteps = 0, timedSeconds = 0.0, lastLoss = Double.nan
        var stoppedAt: URL?
        let stepsBefore = step.counters.step
        let samplesPerStep = Double(options.batchSize * worldSize * options.gradAccum)
        func elapsed() -> Double { trainSecondsBefore + Date().timeIntervalSince(start) }
        while step.counters.step < totalSteps {
            let t0 = Date()
            let samplerBefore = batches.sampler
            let outcome = try step.run(batches, stopRequested: stopRequested)
            if outcome.abandoned {
                // Stopped between micro-steps: the step was not taken; its data is read again on resume.
                batches.sampler = samplerBefore
                let t1 = Date()
                let dir = try writeCheckpoint(trainSeconds: elapsed())
                log.info(String(format: "stop requested during step %d: checkpoint %@ (step %d) written in %.2f s", outcome.step,
                                dir.lastPathComponent, step.counters.step, Date().timeIntervalSince(t1)))
                stoppedAt = dir
                break
            }
            let dt = Date().timeIntervalSince(t0)
            let n = outcome.step
            if n > 1 || totalSteps == 1 { timedSteps += 1; timedSeconds += dt }
            let rate = timedSteps > 0 ? samplesPerStep * Double(timedSteps) / timedSeconds : samplesPerStep / dt
            if let loss = outcome.loss, let lr = outcome.lr, let norm = outcome.gradNorm {
                lastLoss = loss
                currentLR = lr
                if n % options.logEvery == 0 || n == totalSteps || n == 1 {
                    try log.metric(["step": n, "loss": loss, "lr": lr, "grad_norm": norm, "samples_per_s": rate,
                                    "skipped": step.counters.skippedTotal, "epoch": batches.sampler.epoch,
                                    "time_s": elapsed()])
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
                let t1 = Date()
                // A rank stuck writing (a hung file system) is reported and timed out like a stalled collective.
                let dir = try comm.watched("checkpoint of step \(n)") { try writeCheckpoint(trainSeconds: elapsed()) }
                log.info(String(format: "checkpoint %@ written in %.2f s%@", dir.lastPathComponent,
                                Date().timeIntervalSince(t1), outcome.stopAgreed ? " (stop requested)" : ""))
                if outcome.stopAgreed && n < totalSteps { stoppedAt = dir }
            }
            if stoppedAt != nil { break }
        }
        let wall = Date().timeIntervalSince(start), total = elapsed()
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
        if let stoppedAt {
            try writeStatus(.stopped, trainSeconds: total, checkpoint: stoppedAt)
            log.info("stopped at step \(c.step) of \(totalSteps) on request: checkpoint \(stoppedAt.lastPathComponent) written, no final weights; continue with --resume latest")
        } else {
            if comm.rank == 0 { try saveWeights() }
            try writeStatus(.complete, trainSeconds: total)
        }
        if stoppedAt == nil && stepsBefore == c.step {
            // Resumed at the last step (a requeued job after the run finished, say): nothing trained, no loss.
            log.info("done: the checkpoint was already at the last step (\(c.step) of \(totalSteps)); nothing to train, final weights written from it")
        } else {
            log.info(String(format: "done: %d steps, %@ this pass (%@ in all), final loss %.4f, %.1f samples/s, %d skipped",
                            c.step, RunLog.duration(wall), RunLog.duration(total), lastLoss, rate, c.skippedTotal))
        }
        return TrainResult(steps: c.step, finalLoss: lastLoss, wallSeconds: wall, samplesPerSecond: rate,
                           skippedSteps: c.skippedTotal, stoppedEarly: stoppedAt != nil)
    }

    // MARK: validation previews

    /// What the trained weights carry besides the tensors: the steps, the options, and the prompt vocabulary the
    /// labels index (so `sample --prompt` works and a ControlNet trained beside a base shares its labels).
    var weightMetadata: [String: String] {
        var m = ["steps": "\(step.counters.step)", "options": options.jsonDescription,
                 PredictionType.metadataKey: prediction.rawValue]
        if let v = samples.vocabulary { m[PromptList.metadataKey] = PromptList.encode(v) }
        return m
    }

    /// The run's output: OUT/unet.safetensors or OUT/controlnet.safetensors holds the EMA when one is kept (what
    /// diffusers' --use_ema saves), and the raw weights are written beside it as *-raw.safetensors.
    func saveWeights() throws {
        let name = options.mode == .base ? "unet" : "controlnet"
        guard let ema = step.ema else {
            try model.saveTrainable(to: outDirectory.appendingPathComponent(name + ".safetensors"), metadata: weightMetadata)
            return
        }
        var raw = weightMetadata; raw["weights"] = "raw (the EMA is in \(name).safetensors)"
        try model.saveTrainable(to: outDirectory.appendingPathComponent(name + "-raw.safetensors"), metadata: raw)
        var emaMeta = weightMetadata; emaMeta["weights"] = "EMA, decay \(options.emaDecay ?? 0)"
        try withTemporaryWeights(ema) {
            try model.saveTrainable(to: outDirectory.appendingPathComponent(name + ".safetensors"), metadata: emaMeta)
        }
    }

    /// Runs `body` with the model's trainable arena holding `weights` (e.g. the EMA), then puts the weights back.
    func withTemporaryWeights<T>(_ weights: FloatBuffer, _ body: () throws -> T) rethrows -> T {
        let saved = FloatBuffer(count: model.params.count)
        saved.copy(from: model.params)
        model.params.copy(from: weights)
        defer { model.params.copy(from: saved) }
        return try body()
    }

    /// The previewer when --validation-steps is set, on every rank (each samples a share; rank 0 writes): held-out
    /// hints (--validation-data, else the test split of --data; paired data has no split, so its own rows) for
    /// ControlNets, labelled samples for a base.
    /// The held-out hints of the previews, read (and refused by option) before the run directory is claimed.
    static func loadValidationHints(_ options: TrainOptions, config: ModelConfig,
                                    vocabulary: PromptVocabulary?) throws -> HintSet? {
        guard options.validationSteps != nil else { return nil }
        let kind = options.hintKind.map { $0.isDeterministic ? $0 : .canny }
        let spec = options.spec(for: options.validationData ?? options.data)
        let option = options.validationData != nil ? "--validation-data" : "--validation-steps"
        let held: HintSet
        do {
            held = try HeldOutHints.load(spec, split: .test, kind: kind, count: options.validationCount,
                                         imageSize: config.imageSize, imageChannels: config.inChannels,
                                         hintChannels: config.hintChannels, seed: options.seed)
        } catch {
            throw OptionsError(option: option, message: "the validation previews need held-out hints (the test split of \(options.validationData ?? options.data)): \(error)")
        }
        // Their prompts must be the training data's (the model's labels): checked now, not at the first preview.
        do {
            _ = try Generator.labels(for: held, vocabulary: vocabulary, numClasses: config.numClasses,
                                     dataOption: option)
        } catch let e as OptionsError {
            throw OptionsError(option: e.option, message: "\(options.validationData ?? options.data): \(e.message)")
        }
        return held
    }

    func makeValidationPreview() throws -> ValidationPreview? {
        guard let held = validationHints else { return nil }
        return try ValidationPreview(model: model, hints: held, vocabulary: samples.vocabulary, prediction: prediction,
                                     seed: options.seed,
                                     directory: outDirectory.appendingPathComponent("validation"), comm: comm)
    }

    func validate(_ preview: ValidationPreview, step n: Int) throws {
        // Previews show what the run would output: the EMA when one is kept.
        let r = try step.ema.map { ema in try withTemporaryWeights(ema) { try preview.run(step: n) } } ?? preview.run(step: n)
        guard let r else { return }   // a rank other than 0: it sampled its share
        var record: [String: Any] = ["step": n, "validation_png": r.url.path]
        var text = ""
        switch r.scores {
        case .edges(let e)?:
            text = String(format: "; edge F1 exact %.3f, 1-px %.3f", e.exact.f1, e.onePixel.f1)
            record["edge_f1_exact"] = e.exact.f1; record["edge_f1_1px"] = e.onePixel.f1
        case .fill(let f)?:
            text = String(format: "; circle IoU %.3f, fill colour %.3f, background colour %.3f", f.circleIoU,
                          f.fillAccuracy, f.backgroundAccuracy)
            record["circle_iou"] = f.circleIoU; record["fill_accuracy"] = f.fillAccuracy
            record["background_accuracy"] = f.backgroundAccuracy
        case nil:
            break
        }
        log.info("validation: \(r.url.path)\(text)")
        try log.metric(record)
    }
}

