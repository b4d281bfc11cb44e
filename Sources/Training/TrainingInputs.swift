// Everything a run reads, loaded and checked before the run directory is touched: the training samples shaped for
// the model (labels checked against the config's classes; paired data's prompts turned into labels through the
// vocabulary, the base model's when it has one), their fingerprint for checkpoints, and the model with its weights
// (finite, as WeightFile checks on load). Memory the config and batch imply is checked before any large allocation.
import Foundation
import Datasets
import Model
import SafeTensors

struct TrainingInputs {
    let samples: SampleSource
    let fingerprint: DataFingerprint
    let model: TrainingModel
    let prediction: PredictionType

    static func load(_ options: TrainOptions, config: ModelConfig, worldSize: Int, log: (String) -> Void) throws -> TrainingInputs {
        try MemoryPlan.check(config: config, configName: options.config, mode: options.mode,
                             samples: options.batchSize * options.simulateRanks)
        var samples: SampleSource
        do {
            var last = Date.distantPast
            samples = try DatasetCatalog.samples(
                options.dataSpec, split: .train, imageSize: config.imageSize, imageChannels: config.inChannels,
                hintChannels: config.hintChannels, hint: options.hintKind,
                threads: max(1, ProcessInfo.processInfo.activeProcessorCount)) { done, total in
                    // Decoding a large paired set takes a while: say how far it is, about once a second.
                    if done == total || Date().timeIntervalSince(last) > 1 {
                        last = Date()
                        log("decoding \(options.data): \(done)/\(total) images")
                    }
                }
        } catch {
            throw OptionsError(option: "--data", message: "\(error)")
        }
        if let paired = samples as? PairedSamples, !paired.paired.skipped.isEmpty {
            let rows = paired.paired.skipped
            log("--skip-bad-images: left out \(rows.count) row(s) of \(options.data):")
            for r in rows.prefix(20) { log("  line \(r.line), \(r.column) \(r.file): \(r.problem)") }
            if rows.count > 20 { log("  ... and \(rows.count - 20) more") }
        }
        if let paired = samples as? PairedSamples {
            log("\(options.data): \(paired.count) pairs \(paired.paired.reused ? "from the decode cache" : "decoded into") \(paired.paired.cacheFile.path)")
        }
        let baseVocabulary = try options.base.flatMap { try PromptList.read(from: $0, option: "--base") }
            ?? options.initFrom.flatMap { try PromptList.read(from: $0, option: "--init-from") }
        samples = try relabel(samples, to: baseVocabulary, options: options)
        try checkLabels(samples, config: config, options: options)
        let globalBatch = options.batchSize * worldSize
        guard samples.count >= globalBatch else {
            throw OptionsError(option: "--batch-size", message: "the global batch (\(options.batchSize) per rank x \(worldSize) ranks = \(globalBatch)) is larger than the \(samples.count) training images of \(options.data)")
        }
        let fingerprint = DataFingerprint(
            source: options.data, resize: options.resize, hint: options.hintKind?.rawValue,
            count: samples.count, channels: samples.imageChannels, height: samples.size, width: samples.size,
            contentSHA256: samples.contentHash, prompts: samples.vocabulary?.prompts)
        let prediction = try predictionType(options)
        let model = try TrainingModels.make(options, config: config)
        return TrainingInputs(samples: samples, fingerprint: fingerprint, model: model, prediction: prediction)
    }

    /// What the network predicts: the base's, as its weight file records it (a ControlNet must learn the target
    /// its base was trained on), or --prediction-type for a fresh base; a difference is refused.
    static func predictionType(_ options: TrainOptions) throws -> PredictionType {
        let asked = options.predictionType.flatMap(PredictionType.init)
        let (path, option) = options.mode == .controlnet ? (options.base, "--base") : (options.initFrom, "--init-from")
        guard let path else { return asked ?? .epsilon }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw OptionsError(option: option, message: "\(error)")
        }
        let recorded = file.metadata[PredictionType.metadataKey]
        let stored = try recorded.map { text -> PredictionType in
            guard let p = PredictionType(rawValue: text) else {
                throw OptionsError(option: option, message: "\(path) records prediction_type '\(text)', which is not one of epsilon, v")
            }
            return p
        } ?? .epsilon
        if let asked, asked != stored {
            throw OptionsError(option: "--prediction-type", message: "\(asked.rawValue) differs from the \(stored.rawValue) prediction \(path) was trained with\(recorded == nil ? " (it records none: epsilon)" : ""); drop the option or use a matching \(option)")
        }
        return stored
    }

    /// Paired data trained beside (or from) a model that already has a vocabulary speaks its language: each prompt
    /// gets the model's label for it; a prompt the model does not know is refused, naming the closest known ones.
    static func relabel(_ samples: SampleSource, to vocabulary: PromptVocabulary?, options: TrainOptions) throws -> SampleSource {
        guard let vocabulary, let own = samples.vocabulary, let labels = samples.labels, own != vocabulary else { return samples }
        let mapped = try labels.map { l -> Int32 in
            guard l >= 0 else { return -1 }
            let prompt = own.prompts[Int(l)]
            guard let m = vocabulary.label(of: prompt) else {
                throw OptionsError(option: "--data", message: "\(options.data): \(vocabulary.unknownPromptMessage(prompt)) (the base model's vocabulary has \(vocabulary.count) prompts)")
            }
            return m
        }
        return RelabeledSamples(samples, labels: mapped, vocabulary: vocabulary)
    }

    /// A class-conditional config needs labels its classes can take (-1, an empty prompt, means "no label");
    /// labels that do not fit would silently train as "no label".
    static func checkLabels(_ samples: SampleSource, config: ModelConfig, options: TrainOptions) throws {
        if let v = samples.vocabulary, config.numClasses > 0, v.count > config.numClasses {
            throw OptionsError(option: "--data", message: "\(options.data) has \(v.count) distinct prompts but config '\(options.config)' has num_classes \(config.numClasses); use a config with at least \(v.count) classes")
        }
        guard config.numClasses > 0 else { return }
        guard let labels = samples.labels else {
            throw OptionsError(option: "--data", message: "\(options.data) has no labels, but config '\(options.config)' is class-conditional (num_classes \(config.numClasses)); give labelled data or use an unconditional config")
        }
        if let bad = labels.firstIndex(where: { $0 < -1 || Int($0) >= config.numClasses }) {
            let top = labels.max() ?? 0
            throw OptionsError(option: "--data", message: "\(options.data) image \(bad) has label \(labels[bad]) (labels go up to \(top)), but config '\(options.config)' has num_classes \(config.numClasses) (labels 0...\(config.numClasses - 1)); use a config with enough classes")
        }
    }
}

/// Samples with their labels replaced (mapped into another vocabulary).
final class RelabeledSamples: SampleSource {
    let inner: SampleSource
    let labels: [Int32]?
    let vocabulary: PromptVocabulary?
    init(_ inner: SampleSource, labels: [Int32], vocabulary: PromptVocabulary) {
        self.inner = inner; self.labels = labels; self.vocabulary = vocabulary
    }
    var name: String { inner.name }
    var count: Int { inner.count }
    var size: Int { inner.size }
    var imageChannels: Int { inner.imageChannels }
    var hintChannels: Int { inner.hintChannels }
    var contentHash: String { inner.contentHash }
    func image(_ i: Int, into out: UnsafeMutablePointer<Float>) { inner.image(i, into: out) }
    func hint(_ i: Int, seed: UInt64, into out: UnsafeMutablePointer<Float>) { inner.hint(i, seed: seed, into: out) }
}

/// The prompt vocabulary a weight file carries in its metadata ("prompts": a JSON array), so that a model trained
/// on prompts can be sampled by prompt and a ControlNet trained beside it uses the same labels.
public enum PromptList {
    public static let metadataKey = "prompts"

    public static func encode(_ v: PromptVocabulary) -> String {
        (try? JSONSerialization.data(withJSONObject: v.prompts)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    public static func decode(_ text: String, source: String) throws -> PromptVocabulary {
        guard let list = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String] else {
            throw OptionsError(option: source, message: "its '\(metadataKey)' metadata is not a JSON array of strings")
        }
        return PromptVocabulary(prompts: list)
    }

    /// The vocabulary in the weight file at `path`, or nil when it has none.
    public static func read(from path: String, option: String) throws -> PromptVocabulary? {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw OptionsError(option: option, message: "\(error)")
        }
        return try file.metadata[metadataKey].map { try decode($0, source: "\(option) \(path)") }
    }
}
