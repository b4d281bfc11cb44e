// Everything a run reads, loaded and checked before the run directory is touched: the training split shaped for
// the model (labels checked against the config's classes), its hints, its fingerprint for checkpoints, and the
// model with its weights (finite, as WeightFile checks on load). Memory the config and batch imply is checked
// before any large allocation.
import Crypto
import Foundation
import Datasets
import Model

struct TrainingInputs {
    let dataset: ImageDataset
    let hints: HintProvider?
    let fingerprint: DataFingerprint
    let model: TrainingModel

    static func load(_ options: TrainOptions, config: ModelConfig, worldSize: Int) throws -> TrainingInputs {
        try MemoryPlan.check(config: config, configName: options.config, mode: options.mode,
                             samples: options.batchSize * options.simulateRanks)
        let dataset: ImageDataset
        do {
            dataset = try DatasetCatalog.load(options.dataSpec, split: .train, imageSize: config.imageSize,
                                              channels: config.inChannels)
        } catch {
            throw OptionsError(option: "--data", message: "\(error)")
        }
        try checkLabels(dataset, config: config, options: options)
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
        let fingerprint = DataFingerprint(
            source: options.data, resize: options.resize, hint: options.mode == .controlnet ? options.hint : nil,
            count: dataset.count, channels: dataset.channels, height: dataset.height, width: dataset.width,
            contentSHA256: contentHash(dataset))
        let model = try TrainingModels.make(options, config: config)
        return TrainingInputs(dataset: dataset, hints: hints, fingerprint: fingerprint, model: model)
    }

    /// A class-conditional config needs a label for every image, each one of its classes; labels that do not fit
    /// would silently train as "no label".
    static func checkLabels(_ dataset: ImageDataset, config: ModelConfig, options: TrainOptions) throws {
        guard config.numClasses > 0 else { return }
        guard let labels = dataset.labels else {
            throw OptionsError(option: "--data", message: "\(options.data) has no labels, but config '\(options.config)' is class-conditional (num_classes \(config.numClasses)); give labelled data or use an unconditional config")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= config.numClasses }) {
            let top = labels.max() ?? 0
            throw OptionsError(option: "--data", message: "\(options.data) image \(bad) has label \(labels[bad]) (labels go up to \(top)), but config '\(options.config)' has num_classes \(config.numClasses) (labels 0...\(config.numClasses - 1)); use a config with enough classes")
        }
    }

    /// SHA-256 of the pixels and labels as trained on.
    static func contentHash(_ d: ImageDataset) -> String {
        var h = SHA256()
        d.pixels.withUnsafeBytes { h.update(bufferPointer: $0) }
        if let labels = d.labels { labels.withUnsafeBytes { h.update(bufferPointer: $0) } }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
