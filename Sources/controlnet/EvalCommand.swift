// `controlnet eval`: how closely samples follow held-out hints, with the floors and the ceiling beside our figure,
// for the task the data holds: edges (Canny of the sample against edge hints: Training's EdgeEvaluation) or fill
// circles (circle IoU and fill/background colour accuracy: FillEvaluation). Prints the report as JSON. Samples on
// every core and, under mpirun, on every rank (rank 0 prints and writes), with the one-process run's figures.
import ArgumentParser
import Foundation
import Datasets
import Distributed
import Model
import Training

struct Eval: ParsableCommand {
    enum Task: String, ExpressibleByArgument, CaseIterable { case auto, edges, fill }

    static let configuration = CommandConfiguration(
        abstract: "Score samples against held-out hints (edge F1, or the fill-circles measures), with floors and ceiling.")
    @OptionGroup var gen: GenerationFlags
    @OptionGroup var dataFlags: DataFlags
    @Option(help: "Held-out images to evaluate on (spread over the test split, or over a paired-data directory).")
    var count = 256
    @Option(help: "auto (fill for fill-circles prompts, else edges), edges or fill.")
    var task: Task = .auto
    @Option(help: "Write the JSON here as well as to stdout.")
    var json: String?
    @Option(help: "Also write a PNG grid of hint | sample | base sample.")
    var grid: String?
    @Flag(help: "Skip the floors (base model at scale 0; shuffled hints), which cost more sampling passes.")
    var skipBaseReference = false

    func validate() throws {
        guard count >= 1 && count <= 100_000 else { throw ValidationError("--count must be in 1...100000, got \(count)") }
        guard !gen.controlTexts.isEmpty else { throw ValidationError("eval needs at least one --control FILE[:SCALE]") }
        do { try PathGuard.checkKinds(outputs) } catch { throw ValidationError("\(error)") }
    }

    var outputs: [(option: String, path: String)] { (json.map { [("--json", $0)] } ?? []) + (grid.map { [("--grid", $0)] } ?? []) }

    func run() throws {
        try PathGuard.check(outputs: outputs,
                            inputs: try gen.inputs() + dataFlags.spec(resize: true).inputFiles.map { ("--data", $0) })
        try OutputReplacement.check((json.map { [("--json", $0, .json)] } ?? []) + (grid.map { [("--grid", $0, .png)] } ?? []))
        try PathGuard.checkWritableParents(outputs)
        let comm = try gen.startRanks()
        defer { comm.finalize() }
        try gen.abortingOnError(comm) { try generate(comm: comm) }
    }

    /// The ranks' work, after they agreed on the command line.
    private func generate(comm: any Communicator) throws {
        let generator = try gen.loadGenerator()
        let config = generator.config, S = config.imageSize
        let spec = dataFlags.spec(resize: true)
        let set = try HeldOutHints.load(spec, split: .test, kind: spec.isPaired ? nil : .canny, count: count,
                                        imageSize: S, imageChannels: config.inChannels,
                                        hintChannels: config.hintChannels)
        // The samples, the base model's and the shuffled-hint floor's: refuse what cannot fit before sampling.
        do {
            try MemoryPlan.checkGeneration(config: config, count: set.count, batchSize: gen.batchSize,
                                           workers: gen.settings.threads ?? GenerationPlan.defaultThreads,
                                           imageSets: skipBaseReference ? 1 : 3)
        } catch { throw ValidationError("\(error)") }
        let progress: (String, Int, Int) -> Void = { what, done, total in
            if comm.isRoot { reportProgress(comm.size > 1 ? what + " (rank 0's share)" : what, done, total) }
        }
        let isFill = task == .fill || (task == .auto && (try? FillEvaluation.colours(of: set)) != nil)
        let data: Data, samples: [Float], baseSamples: [Float]?
        if isFill {
            let outcome = try FillEvaluation.run(generator: generator, hints: set, settings: gen.settings,
                                                 data: dataFlags.data, controls: gen.controlTexts, base: gen.base,
                                                 skipFloors: skipBaseReference, comm: comm, progress: progress)
            (data, samples, baseSamples) = (outcome.report.json, outcome.samples, outcome.baseSamples)
        } else {
            guard config.inChannels == 1 && config.hintChannels == 1 else {
                throw ValidationError("--task edges scores one-channel images against one-channel edge hints; this model has \(config.inChannels)-channel images and \(config.hintChannels)-channel hints (try --task fill)")
            }
            let outcome = try EdgeEvaluation.run(generator: generator, hints: set, settings: gen.settings,
                                                 data: dataFlags.data, controls: gen.controlTexts, base: gen.base,
                                                 skipBaseFloor: skipBaseReference, comm: comm, progress: progress)
            (data, samples, baseSamples) = (outcome.report.json, outcome.samples, outcome.baseSamples)
        }
        guard comm.isRoot else { return }
        if let grid {
            let n = min(set.count, 64)
            func cut(_ v: [Float], _ channels: Int) -> [Float] { Array(v.prefix(n * channels * S * S)) }
            var panels = [GridPanel(cut(set.hints, set.hintChannels), range: 0...1, channels: set.hintChannels),
                          GridPanel(cut(samples, config.inChannels), range: -1...1, channels: config.inChannels)]
            if let b = baseSamples { panels.append(GridPanel(cut(b, config.inChannels), range: -1...1, channels: config.inChannels)) }
            try ImageGrid.writePNG(panels, count: n, height: S, width: S, columns: 8, to: URL(fileURLWithPath: grid))
        }
        print(String(decoding: data, as: UTF8.self))
        if let json {
            do { try FileOutput.write(Array(data), to: URL(fileURLWithPath: json)) } catch { throw ValidationError("--json: \(error)") }
        }
    }
}
