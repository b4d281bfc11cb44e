// `controlnet eval`: how closely samples follow held-out edge hints, with the floors and the ceiling beside our
// figure (Training's EdgeEvaluation). Prints the report as JSON.
import ArgumentParser
import Foundation
import Datasets
import Model
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edge precision/recall/F1 of Canny(samples) vs held-out hints, with floor and ceiling references.")
    @OptionGroup var gen: GenerationFlags
    @OptionGroup var dataFlags: DataFlags
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
        guard !gen.controlTexts.isEmpty else { throw ValidationError("eval needs at least one --control FILE[:SCALE]") }
    }

    func run() throws {
        try PathGuard.check(outputs: (json.map { [("--json", $0)] } ?? []) + (grid.map { [("--grid", $0)] } ?? []),
                            inputs: try gen.inputs())
        let generator = try gen.loadGenerator()
        let config = generator.config, S = config.imageSize
        let set = try HeldOutHints.load(dataFlags.spec(resize: true), split: .test, kind: .canny, count: count,
                                        imageSize: S, channels: config.inChannels)
        let outcome = EdgeEvaluation.run(generator: generator, hints: set, settings: gen.settings,
                                         data: dataFlags.data, controls: gen.controlTexts, base: gen.base,
                                         skipBaseFloor: skipBaseReference, progress: reportProgress)
        if let grid {
            var panels: [(values: [Float], range: ClosedRange<Float>)] = [(set.hints, 0...1), (outcome.samples, -1...1)]
            if let b = outcome.baseSamples { panels.append((b, -1...1)) }
            let n = min(set.count, 64)
            let cut = panels.map { (Array($0.values.prefix(n * S * S)), $0.range) }
            try ImageGrid.writePNG(cut, count: n, height: S, width: S, columns: 8, to: URL(fileURLWithPath: grid))
        }
        let data = outcome.report.json
        print(String(decoding: data, as: UTF8.self))
        if let json { try data.write(to: URL(fileURLWithPath: json)) }
    }
}
