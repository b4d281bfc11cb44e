// Validation previews during training: every --validation-steps, rank 0 samples a fixed set of held-out hints with
// the live weights (DDIM, few steps) into OUT/validation/step-N.png, and scores their edges.
import Foundation
import Datasets
import Model

public final class ValidationPreview {
    let generator: Generator
    let hints: HintSet?
    let count: Int
    let directory: URL
    let settings: GenerationSettings

    /// Samples through `model`'s live weights: ControlNet training conditions on `hints`; base training draws
    /// `count` unconditional samples.
    public init(model: TrainingModel, hints: HintSet?, count: Int, seed: UInt64, directory: URL, steps: Int = 20) throws {
        self.hints = hints
        self.count = hints?.count ?? count
        self.directory = directory
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw OptionsError(option: "--out", message: "cannot create \(directory.path): \(error.localizedDescription)")
        }
        var s = GenerationSettings()
        s.sampler = SamplerSettings(kind: .ddim, steps: steps, seed: seed)
        settings = s
        switch model {
        case let m as ControlNetTraining:
            generator = Generator(config: m.config, base: m.base, controls: [.init(net: m.control, params: m.params, scale: 1)])
        default:
            generator = Generator(config: model.config, base: model.params, controls: [])
        }
    }

    /// Samples the previews for `step`; returns the PNG's URL and, with hints, the edge scores.
    @discardableResult
    public func run(step: Int) throws -> (url: URL, scores: EdgeScores?) {
        let config = generator.config, S = config.imageSize
        let labels = config.numClasses > 0 ? hints?.labels : nil
        let images = generator.generate(count: count, hints: hints?.hints, labels: labels, settings: settings)
        let panels: [(values: [Float], range: ClosedRange<Float>)] =
            hints.map { [($0.hints, 0...1), (images, -1...1)] } ?? [(images, -1...1)]
        let url = directory.appendingPathComponent(String(format: "step-%08d.png", step))
        try ImageGrid.writePNG(panels, count: count, height: S, width: S, columns: 8, to: url)
        guard let hints else { return (url, nil) }
        return (url, EdgeScores(images: images, hints: hints.hints, count: count, height: S, width: S))
    }
}
