// `controlnet eval`: how closely samples follow held-out edge hints, against three references: the base model
// (control scale 0, the floor), real digits of the same label by another writer (the floor that matters), and the
// real images the hints came from (the ceiling). Prints JSON.
import ArgumentParser
import Foundation
import Datasets
import Model
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edge precision/recall/F1 of Canny(samples) vs held-out hints, with floor and ceiling references.")
    @OptionGroup var gen: GenerationFlags
    @Option(help: "Dataset whose test split gives the held-out hints.")
    var data = "mnist5k"
    @Option var dataDir = "data"
    @Option(help: "Held-out images to evaluate on (spread over the test split).")
    var count = 256
    @Option(help: "Write the JSON here as well as to stdout.")
    var json: String?
    @Option(help: "Also write a PNG grid of hint | sample | base sample.")
    var grid: String?
    @Flag(help: "Skip the base-model (scale 0) reference, which costs a second sampling pass.")
    var skipBaseReference = false

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard !gen.controls.isEmpty else { throw ValidationError("eval needs at least one --control FILE[:SCALE]") }
    }

    func run() throws {
        let generator = try Generator.load(base: gen.base, controls: gen.controls)
        let config = generator.config, S = config.imageSize
        let set = try HeldOutHints.load(data: data, dataDir: dataDir, split: .test, kind: .canny, count: count,
                                        config: config, resize: true)
        let labels = config.numClasses > 0 ? set.labels : nil
        func report(_ scores: (exact: EdgeScore, onePixel: EdgeScore)) -> [String: Any] {
            ["exact": scores.exact.summary, "one_pixel": scores.onePixel.summary]
        }
        var started = Date()
        let images = generator.generate(count: set.count, hints: set.hints, labels: labels, settings: gen.settings) { d, t in
            reportProgress("controlled samples", d, t)
        }
        let controlledSeconds = Date().timeIntervalSince(started)
        var result: [String: Any] = [
            "count": set.count, "data": data, "sampler": gen.sampler.rawValue, "steps": gen.steps, "seed": gen.seed,
            "controls": gen.controls, "base": gen.base,
            "controlled": report(EdgeMetrics.evaluate(images: images, hints: set.hints, count: set.count, height: S, width: S)),
            "real_images_ceiling": report(EdgeMetrics.evaluate(images: set.images!, hints: set.hints, count: set.count, height: S, width: S)),
            "sampling_seconds": controlledSeconds,
        ]
        if let others = set.sameLabelOthers {
            result["same_digit_other_writer"] = report(EdgeMetrics.evaluate(images: others, hints: set.hints, count: set.count, height: S, width: S))
        }
        var baseImages: [Float]?
        if !skipBaseReference {
            // Scale 0 skips every ControlNet, so these are exactly the base model's samples for the same seeds.
            let saved = generator.controls
            generator.controls = saved.map { var c = $0; c.scale = 0; return c }
            started = Date()
            baseImages = generator.generate(count: set.count, hints: set.hints, labels: labels, settings: gen.settings) { d, t in
                reportProgress("base (scale 0) samples", d, t)
            }
            generator.controls = saved
            result["base_scale_0_floor"] = report(EdgeMetrics.evaluate(images: baseImages!, hints: set.hints, count: set.count, height: S, width: S))
        }
        if let grid {
            var panels: [(values: [Float], range: ClosedRange<Float>)] = [(set.hints, 0...1), (images, -1...1)]
            if let baseImages { panels.append((baseImages, -1...1)) }
            let n = min(set.count, 64)
            let cut = panels.map { (Array($0.values.prefix(n * S * S)), $0.range) }
            let g = ImageGrid.groups(cut, count: n, height: S, width: S, columns: 8)
            let big = ImageGrid.upscale(g.pixels, width: g.width, height: g.height, factor: 3)
            try PNG.write(gray: big.pixels, width: big.width, height: big.height, to: URL(fileURLWithPath: grid))
        }
        let data = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        if let json { try data.write(to: URL(fileURLWithPath: json)) }
    }
}
