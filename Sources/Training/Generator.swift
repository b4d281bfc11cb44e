// Image generation with a base UNet and any number of ControlNets: DDPM or DDIM, guidance windows, per-ControlNet
// scales, classifier-free guidance and guess mode. Used by `controlnet sample`, `controlnet eval` and the
// validation previews during training. A call runs on every worker thread of the process (GenerationWorker, one
// BLAS thread each) and, given a communicator, on every rank, each computing its share and all of them getting
// the whole result; the images are the same bits whatever the split (GenerationPlan).
import Foundation
import Datasets
import Distributed
import Kernels
import Model
import SafeTensors

public struct GenerationSettings: Sendable {
    public var sampler = SamplerSettings()
    /// Controls apply while the trajectory is between these fractions (0 = first step, 1 = last).
    public var guidanceStart = 0.0, guidanceEnd = 1.0
    /// Classifier-free guidance scale (class configs); 1 = conditional prediction only.
    public var cfgScale: Float = 1
    /// Guess mode: the ControlNets see no label and their residuals are weighted 0.825^(K-1-k), shallow ones least;
    /// with CFG the control goes to the conditional branch only (as the ControlNet reference does).
    public var guessMode = false
    /// Samples per network pass, at most (GenerationPlan.passes evens them out). The images depend on it (in the
    /// last bits), never on the threads or ranks. With classifier-free guidance the UNet pass holds twice as many.
    public var batchSize = GenerationPlan.defaultBatchSize
    /// Worker threads in this process, each with its own network objects and arenas and one BLAS thread; nil:
    /// GenerationPlan.defaultThreads (this process's share of the cores).
    public var threads: Int?
    /// Classifier-free guidance: the conditional and unconditional predictions in one UNet pass of 2N samples
    /// (true), or in two passes of N (slower; the same values up to rounding, as the GEMMs have other widths).
    public var batchGuidance = true
    /// Of the convolutions' and attention's products (Precision.swift).
    public var precision = Precision.fp32
    public init() {}
}

/// A ControlNet on the command line: "FILE" (scale 1) or "FILE:SCALE", parsed in this one place.
public struct ControlSpec: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var scale: Float

    public init(path: String, scale: Float = 1) { self.path = path; self.scale = scale }

    /// The text after the last colon is the scale when it reads as a number (so paths with colons still work);
    /// a scale that is not finite is refused.
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let s = Float(text[text.index(after: colon)...]) {
            guard s.isFinite else {
                throw OptionsError(option: "--control", message: "\(text): the scale must be a finite number")
            }
            path = String(text[..<colon]); scale = s
        } else {
            path = text; scale = 1
        }
        guard !path.isEmpty else { throw OptionsError(option: "--control", message: "'\(text)' names no file") }
    }

    public var description: String { scale == 1 ? path : "\(path):\(scale)" }
}

public final class Generator {
    /// A ControlNet's weights (its architecture is the config's) and its conditioning scale.
    public struct Control {
        public let params: FloatBuffer
        public var scale: Float
        public init(params: FloatBuffer, scale: Float) { self.params = params; self.scale = scale }
    }

    public let config: ModelConfig
    public let base: FloatBuffer
    public var controls: [Control]
    /// The prompts the model's labels index (from the weight files' metadata), or nil.
    public var vocabulary: PromptVocabulary?
    /// What the base predicts (its weight file's metadata; epsilon when it records none).
    public var prediction: PredictionType = .epsilon
    /// One per thread, kept across calls so their arenas are sized once.
    private var workers: [GenerationWorker] = []
    /// Resident bytes of every worker's arenas (the deepest each has been).
    public var arenaBytes: Int { workers.reduce(0) { $0 + $1.arenas.capacityBytes } }

    public init(config: ModelConfig, base: FloatBuffer, controls: [Control]) {
        precondition(base.count == UNet(config: config).parameterCount, "base: not this config's UNet")
        self.config = config; self.base = base; self.controls = controls
    }

    /// Loads the base from a weight file (its config from the metadata) and each ControlNet.
    public static func load(base path: String, controls specs: [ControlSpec]) throws -> Generator {
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
        let config = try WeightFile.config(of: file)
        let unet = UNet(config: config)
        let base = FloatBuffer(count: unet.parameterCount)
        try WeightFile.load(file, table: unet.table, into: base.pointer, expecting: config)
        var controls: [Control] = []
        var vocabulary = try file.metadata[PromptList.metadataKey].map { try PromptList.decode($0, source: "--base \(path)") }
        let net = ControlNet(config: config)
        for spec in specs {
            let cf = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: spec.path))
            let own = try cf.metadata[PromptList.metadataKey].map { try PromptList.decode($0, source: "--control \(spec.path)") }
            if let own, let v = vocabulary, own != v {
                throw OptionsError(option: "--control", message: "\(spec.path) was trained with another prompt vocabulary than --base \(path) (\(own.count) vs \(v.count) prompts); its labels would mean other prompts")
            }
            vocabulary = vocabulary ?? own
            // A ControlNet learns to steer its base's prediction (epsilon or v): beside a base that predicts the
            // other one it steers the wrong quantity, and the samples are silently off.
            let basePrediction = file.metadata[PredictionType.metadataKey] ?? PredictionType.epsilon.rawValue
            if let trained = cf.metadata[PredictionType.metadataKey], trained != basePrediction {
                throw OptionsError(option: "--control", message: "\(spec.path) was trained beside a base with \(trained) prediction, but --base \(path) predicts \(basePrediction); use the base it was trained with")
            }
            let params = FloatBuffer(count: net.parameterCount)
            try WeightFile.load(cf, table: net.table, into: params.pointer, expecting: config)
            controls.append(Control(params: params, scale: spec.scale))
        }
        let g = Generator(config: config, base: base, controls: controls)
        g.vocabulary = vocabulary
        if let p = file.metadata[PredictionType.metadataKey] {
            guard let type = PredictionType(rawValue: p) else {
                throw OptionsError(option: "--base", message: "\(path) records prediction_type '\(p)', which is not one of epsilon, v")
            }
            g.prediction = type
        }
        return g
    }

    /// The model's labels for held-out samples: their prompts looked up in the model's vocabulary (the data's own
    /// label numbers may index another one); -1 and unlabelled data give "no label". nil for unconditional models.
    public func labels(for set: HintSet) throws -> [Int]? {
        try Self.labels(for: set, vocabulary: vocabulary, numClasses: config.numClasses)
    }

    /// The same for a model of `numClasses` with `vocabulary`; `dataOption` names the held-out data in errors.
    public static func labels(for set: HintSet, vocabulary: PromptVocabulary?, numClasses: Int,
                              dataOption: String = "--data") throws -> [Int]? {
        guard numClasses > 0, let labels = set.labels else { return nil }
        guard let data = set.vocabulary else {
            return labels.map { (0..<numClasses).contains($0) ? $0 : numClasses }
        }
        guard let model = vocabulary else {
            throw OptionsError(option: "--base", message: "the data has prompts but the model's weight files hold no prompt vocabulary to map them to")
        }
        return try labels.map { l in
            guard l >= 0 else { return numClasses }
            let prompt = data.prompts[l]
            guard let m = model.label(of: prompt) else {
                throw OptionsError(option: dataOption, message: model.unknownPromptMessage(prompt))
            }
            return Int(m)
        }
    }

    var perSample: Int { config.inChannels * config.imageSize * config.imageSize }
    var hintPerSample: Int { config.hintChannels * config.imageSize * config.imageSize }

    /// Every sample on this process's worker threads. hints: (count, hint_channels, S, S) in [0, 1], required
    /// when there are ControlNets; labels: (count) or nil. Returns images (count, C, S, S) in [-1, 1].
    /// `progress(done, total)` reports finished samples.
    public func generate(count: Int, hints: [Float]?, labels: [Int]?, settings: GenerationSettings,
                         progress: ((Int, Int) -> Void)? = nil) -> [Float] {
        var images = [Float](repeating: 0, count: count * perSample)
        let passes = GenerationPlan.passes(count: count, batchSize: settings.batchSize)
        images.withUnsafeMutableBufferPointer {
            run(passes[...], hints: hints, labels: labels, settings: settings, into: $0.baseAddress!, progress: progress)
        }
        return images
    }

    /// The same images, computed by every rank of `comm` (a contiguous share each, on all its threads) and
    /// gathered: every rank returns all `count` of them. Every rank must call it with the same arguments.
    /// `progress` reports this rank's share.
    public func generate(count: Int, hints: [Float]?, labels: [Int]?, settings: GenerationSettings,
                         comm: any Communicator, progress: ((Int, Int) -> Void)? = nil) throws -> [Float] {
        let per = perSample
        let (floats, overflow) = count.multipliedReportingOverflow(by: per)
        guard !overflow && floats <= Int(Int32.max) else {
            throw OptionsError(option: "--count", message: "\(count) samples of \(per) floats are more than one gather moves (\(Int32.max) floats); sample fewer per run")
        }
        var images = [Float](repeating: 0, count: count * per)
        let b = settings.batchSize
        let mine = GenerationPlan.passes(count: count, batchSize: b, rank: comm.rank, ranks: comm.size)
        try images.withUnsafeMutableBufferPointer { buffer in
            let out = buffer.baseAddress!
            run(mine, hints: hints, labels: labels, settings: settings, into: out, progress: progress)
            try comm.allGather(out, count: count * per) { r in
                let s = GenerationPlan.share(count: count, batchSize: b, rank: r, ranks: comm.size)
                return (s.lowerBound * per)..<(s.upperBound * per)
            }
        }
        return images
    }

    /// Samples `passes` (global sample numbers) into out (count, C, S, S) at their positions, on this process's
    /// threads.
    func run(_ passes: ArraySlice<Range<Int>>, hints: [Float]?, labels: [Int]?, settings: GenerationSettings,
             into out: UnsafeMutablePointer<Float>, progress: ((Int, Int) -> Void)?) {
        let active = controls.filter { $0.scale != 0 }
        guard let end = passes.last?.upperBound else { return }
        precondition(active.isEmpty || (hints?.count ?? 0) >= end * hintPerSample, "hints: (count, C, S, S) needed")
        let threads = max(1, settings.threads ?? GenerationPlan.defaultThreads)
        let count = min(threads, passes.count)
        while workers.count < count { workers.append(GenerationWorker(config: config)) }
        // Shared read-only by the workers; a copy so that no array storage is borrowed across threads.
        let hintBuffer = hints.flatMap { h in active.isEmpty ? nil : FloatBuffer(count: h.count) }
        if let hintBuffer, let hints { hints.withUnsafeBufferPointer { hintBuffer.pointer.update(from: $0.baseAddress!, count: $0.count) } }
        var sampler = settings.sampler
        sampler.prediction = prediction
        let job = GenerationJob(config: config, base: base.pointer,
                                controls: active.map { .init(params: $0.params.pointer, scale: $0.scale) },
                                settings: settings, sampler: sampler, hints: hintBuffer?.pointer, labels: labels,
                                output: out, transformed: TransformedWeights())
        let queue = PassQueue(Array(passes), progress: progress)
        // One BLAS thread per worker: the workers already fill the cores, and OpenBLAS threads of concurrent
        // callers would only spin against each other. A lone worker keeps the threads it was given.
        let blasBefore = BLASRuntime.threads
        BLASRuntime.setThreads(count > 1 ? 1 : threads)
        defer { BLASRuntime.setThreads(blasBefore) }
        let shared = SharedJob(job: job, workers: Array(workers.prefix(count)), queue: queue)
        withExtendedLifetime((hintBuffer, base, active)) {
            WorkerThreads.run(count) { w in shared.work(w) }
        }
    }
}

/// What the worker threads of one call share. @unchecked Sendable: the job is read-only while they run, each
/// worker object is used by its own thread only, and the queue locks.
private final class SharedJob: @unchecked Sendable {
    let job: GenerationJob
    let workers: [GenerationWorker]
    let queue: PassQueue
    init(job: GenerationJob, workers: [GenerationWorker], queue: PassQueue) {
        self.job = job; self.workers = workers; self.queue = queue
    }
    func work(_ w: Int) {
        while let pass = queue.take() {
            workers[w].run(pass, job)
            queue.finished(pass.count)
        }
    }
}
