// Validation previews during training: every --validation-steps, a fixed set of held-out samples is sampled with
// the live weights (DDIM, few steps) into OUT/validation/step-N.png and scored: ControlNets by the task's measure
// (edge F1 for one-channel edge hints; circle IoU and colour accuracies for fill-circles prompts), a base by
// nothing but the picture (with the held-out labels, so a class model shows every class). Given a communicator,
// every rank samples its share and rank 0 assembles, writes and scores the whole set (the same images as one
// rank alone would make).
import Foundation
import Datasets
import Distributed
import Model

public final class ValidationPreview {
    /// The scores of one preview.
    public enum Scores {
        case edges(EdgeScores)
        case fill(FillScores)
    }

    let generator: Generator
    let held: HintSet
    let labels: [Int]?
    let controlled: Bool
    let fillColours: [(fill: Int, background: Int)]?
    let directory: URL
    let settings: GenerationSettings
    /// The ranks that share the sampling (nil: this process alone). Rank 0 writes and scores.
    let comm: (any Communicator)?

    /// Samples through `model`'s live weights with the prompts of `vocabulary` (the training data's). With `comm`,
    /// every rank must build one (with the same arguments) and call `run` at the same steps.
    public init(model: TrainingModel, hints held: HintSet, vocabulary: PromptVocabulary?, prediction: PredictionType,
                seed: UInt64, directory: URL, steps: Int = 20, comm: (any Communicator)? = nil) throws {
        self.held = held
        self.directory = directory
        self.comm = comm
        if comm?.rank ?? 0 == 0 {
            do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
                throw OptionsError(option: "--out", message: "cannot create \(directory.path): \(error.localizedDescription)")
            }
        }
        var s = GenerationSettings()
        s.sampler = SamplerSettings(kind: .ddim, steps: steps, seed: seed)
        s.precision = model.precision
        // Small fixed passes: 16 previews are 4 passes, so up to 4 ranks share them, and the images do not depend
        // on how many do (GenerationPlan).
        s.batchSize = 4
        settings = s
        switch model {
        case let m as ControlNetTraining:
            generator = Generator(config: m.config, base: m.base, controls: [.init(params: m.params, scale: 1)])
            controlled = true
        default:
            generator = Generator(config: model.config, base: model.params, controls: [])
            controlled = false
        }
        generator.vocabulary = vocabulary
        generator.prediction = prediction
        labels = try generator.labels(for: held)
        fillColours = controlled && model.config.inChannels == 3 ? try? FillEvaluation.colours(of: held) : nil
    }

    /// Samples the previews for `step`; returns the PNG's URL and, for ControlNets, the scores: on rank 0, and nil
    /// on the other ranks (which only sample their share). A collective when there is a communicator.
    @discardableResult
    public func run(step: Int) throws -> (url: URL, scores: Scores?)? {
        let config = generator.config, S = config.imageSize
        let hints = controlled ? held.hints : nil
        let images = try comm.map {
            try generator.generate(count: held.count, hints: hints, labels: labels, settings: settings, comm: $0)
        } ?? generator.generate(count: held.count, hints: hints, labels: labels, settings: settings)
        guard comm?.rank ?? 0 == 0 else { return nil }
        let samplePanel = GridPanel(images, range: -1...1, channels: config.inChannels)
        let panels = controlled ? [GridPanel(held.hints, range: 0...1, channels: held.hintChannels), samplePanel] : [samplePanel]
        let url = directory.appendingPathComponent(String(format: "step-%08d.png", step))
        try ImageGrid.writePNG(panels, count: held.count, height: S, width: S, columns: 8, to: url)
        guard controlled else { return (url, nil) }
        if let fillColours {
            return (url, .fill(FillMetrics.score(images: images, hints: held.hints, hintChannels: held.hintChannels,
                                                 colours: fillColours, size: S)))
        }
        guard config.inChannels == 1 && held.hintChannels == 1 else { return (url, nil) }
        return (url, .edges(EdgeScores(images: images, hints: held.hints, count: held.count, height: S, width: S)))
    }
}
