// Validation previews during training: every --validation-steps, rank 0 samples a fixed set of held-out hints with
// the live weights (DDIM, few steps) into OUT/validation/step-N.png, and logs their edge F1.
import Foundation
import Datasets
import Model

public final class ValidationPreview {
    let generator: Generator
    let hints: HintSet?
    let directory: URL
    let settings: GenerationSettings

    public init(trainer: Trainer, steps: Int = 20) throws {
        let o = trainer.options, config = trainer.config
        directory = trainer.outDirectory.appendingPathComponent("validation")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var s = GenerationSettings()
        s.sampler = SamplerSettings(kind: .ddim, steps: steps, seed: o.seed)
        settings = s
        switch trainer.model {
        case let m as ControlNetTraining:
            let kind = HintKind(rawValue: o.hint).map { $0.isDeterministic ? $0 : .canny } ?? .canny
            hints = try HeldOutHints.load(data: o.data, dataDir: o.dataDir, split: .test, kind: kind,
                                          count: o.validationCount, config: config, resize: o.resize, seed: o.seed)
            generator = Generator(config: config, base: m.base,
                                  controls: [.init(net: m.control, params: m.params, scale: 1)])
        case let m as BaseTraining:
            hints = nil
            generator = Generator(config: config, base: m.params, controls: [])
        default:
            preconditionFailure("unknown training model")
        }
    }

    /// Samples the previews for `step`; returns the PNG's URL and, with hints, the exact and 1-pixel edge F1.
    @discardableResult
    public func run(step: Int) throws -> (url: URL, exactF1: Double?, onePixelF1: Double?) {
        let config = generator.config, S = config.imageSize
        let count = hints?.count ?? 16
        let labels = config.numClasses > 0 ? hints?.labels : nil
        let images = generator.generate(count: count, hints: hints?.hints, labels: labels, settings: settings)
        let panels: [(values: [Float], range: ClosedRange<Float>)] = hints.map { [($0.hints, 0...1), (images, -1...1)] } ?? [(images, -1...1)]
        let g = ImageGrid.groups(panels, count: count, height: S, width: S, columns: 8)
        let big = ImageGrid.upscale(g.pixels, width: g.width, height: g.height, factor: 3)
        let url = directory.appendingPathComponent(String(format: "step-%08d.png", step))
        try PNG.write(gray: big.pixels, width: big.width, height: big.height, to: url)
        guard let hints else { return (url, nil, nil) }
        let scores = EdgeMetrics.evaluate(images: images, hints: hints.hints, count: count, height: S, width: S)
        return (url, scores.exact.f1, scores.onePixel.f1)
    }
}
