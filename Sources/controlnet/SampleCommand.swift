// `controlnet sample`: images from the base model alone or with ControlNets, as a PNG grid (hint | sample) and
// optionally a safetensors file of the tensors. Runs on every core (worker threads) and, under mpirun, on every
// rank: each computes its share of the samples, rank 0 gathers them and writes the files, bit-identical to a
// one-process run.
import ArgumentParser
import Foundation
import Datasets
import Distributed
import Kernels
import Model
import SafeTensors
import Training

/// Options shared by `sample` and `eval`: the models and the sampler.
struct GenerationFlags: ParsableArguments {
    @Option(help: "Base UNet weights (safetensors, config in its metadata).")
    var base = "models/mnist-base.safetensors"
    @Option(name: .customLong("control"), help: "A ControlNet, FILE or FILE:SCALE; repeat for several.")
    var controlTexts: [String] = []
    @Option(help: "ddpm (all 1000 steps) or ddim.")
    var sampler: SamplerKind = .ddim
    @Option(help: "DDIM steps.")
    var steps = 50
    @Option(help: "Controls act from this fraction of the trajectory...")
    var guidanceStart = 0.0
    @Option(help: "...to this one.")
    var guidanceEnd = 1.0
    @Option(help: "Classifier-free guidance scale (class configs).")
    var cfgScale: Float = 1
    @Flag(help: "Guess mode: ControlNets see no label; residuals weighted 0.825^(K-1-k).")
    var guessMode = false
    @Option(help: "Seed of the sampling noise (sample i's noise depends only on the seed and i).")
    var seed: UInt64 = 0
    @Option(help: "Samples per forward pass, at most (the images depend on it in the last bits; never on --threads or the ranks).")
    var batchSize = GenerationPlan.defaultBatchSize
    @Option(help: "Worker threads per process, one BLAS thread each (default: this process's share of the cores).")
    var threads: Int?
    @Flag(inversion: .prefixedNo, help: ArgumentHelp("Classifier-free guidance's two predictions in one UNet pass.", visibility: .hidden))
    var batchGuidance = true
    @Option(help: "Conv and attention products: fp32 (default) or bf16 (bf16 operands, fp32 sums).")
    var precision: Precision = .fp32

    /// The --control values, parsed.
    func controls() throws -> [ControlSpec] {
        do { return try controlTexts.map(ControlSpec.init(parsing:)) } catch { throw ValidationError("\(error)") }
    }

    func validate() throws {
        guard steps >= 1 && steps <= 1000 else { throw ValidationError("--steps must be in 1...1000, got \(steps)") }
        guard (0...1).contains(guidanceStart), (0...1).contains(guidanceEnd), guidanceStart <= guidanceEnd else {
            throw ValidationError("--guidance-start and --guidance-end must satisfy 0 <= start <= end <= 1")
        }
        guard cfgScale.isFinite else { throw ValidationError("--cfg-scale must be a finite number, got \(cfgScale)") }
        guard batchSize >= 1 && batchSize <= 65_536 else { throw ValidationError("--batch-size must be in 1...65536, got \(batchSize)") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be in 1...1024, got \(threads)") }
        guard FileManager.default.fileExists(atPath: base) else {
            throw ValidationError("--base \(base) does not exist (the shipped base is models/mnist-base.safetensors)")
        }
        for c in try controls() where !FileManager.default.fileExists(atPath: c.path) {
            throw ValidationError("--control \(c.path) does not exist")
        }
    }

    var settings: GenerationSettings {
        var s = GenerationSettings()
        s.sampler = SamplerSettings(kind: sampler, steps: steps, seed: seed)
        s.guidanceStart = guidanceStart; s.guidanceEnd = guidanceEnd
        s.cfgScale = cfgScale; s.guessMode = guessMode; s.batchSize = batchSize
        s.threads = threads; s.batchGuidance = batchGuidance
        s.precision = precision
        return s
    }

    /// The communicator (MPI under a launcher, else this process alone), with this process's BLAS threads set to
    /// its share of the cores, which is also the default worker count.
    func startRanks() throws -> any Communicator {
        let comm = try Communicators.makeDefault()
        // Every rank samples its share of one job: ranks started with other options would mix two jobs' images.
        do { try RankAgreement.checkCommandLine(Array(CommandLine.arguments.dropFirst(2)), ignoring: ["--threads"],
                                                 comm: comm) } catch {
            comm.finalize()
            throw error
        }
        BLASRuntime.configureThreadsForThisProcess()
        return comm
    }

    /// Runs the ranks' work. An error on one rank only (a file missing on its node, less memory there) would leave
    /// the others waiting in a collective for it: with other ranks it ends the job, as training does.
    func abortingOnError(_ comm: any Communicator, _ body: () throws -> Void) throws {
        do { try body() } catch {
            if comm.size > 1 {
                Console.error("[rank \(comm.rank)] error: \(error)\n")
                comm.abort(code: 1, message: "\(error)")
            }
            throw error
        }
    }

    func loadGenerator() throws -> Generator {
        if precision == .bf16, let warning = BF16Kernel.slowPathWarning {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
        let generator = try Generator.load(base: base, controls: try controls())
        // Guidance mixes the conditional and the unconditional prediction: a model without classes has only one.
        if cfgScale != 1 && generator.config.numClasses == 0 {
            throw ValidationError("--cfg-scale \(cfgScale) needs a class-conditional model (classifier-free guidance); \(base) has no classes. Drop --cfg-scale")
        }
        return generator
    }

    /// The files generation reads, for the output guard.
    func inputs() throws -> [(option: String, path: String)] {
        [("--base", base)] + (try controls()).map { ("--control", $0.path) }
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate images with the base model and optional ControlNets.")
    @OptionGroup var gen: GenerationFlags
    @OptionGroup var dataFlags: DataFlags
    @Option(help: "Take hints from this split of --data (e.g. test: the held-out digits).")
    var hintsFrom: DatasetSplit?
    @Option(help: "Read hints from a safetensors file (tensor `hints`, [N, hint_channels, H, W] in [0, 1]).")
    var hints: String?
    @Option(help: "Hint kind computed from the dataset images (default: paired data's own conditions; canny otherwise).")
    var hint: String?
    @Option(help: "Number of samples.")
    var count = 64
    @Option(help: "Class label for every sample (class configs; default: the held-out images' labels, else none).")
    var label: Int?
    @Option(help: "Prompt for every sample, looked up in the model's prompt vocabulary (\"\" = no label).")
    var prompt: String?
    @Option(help: "PNG grid to write.")
    var grid = "samples.png"
    @Option(help: "Also write the tensors (images in [-1, 1], hints, labels) to this safetensors file.")
    var out: String?
    @Option(help: "Grid columns.")
    var columns = 8

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard columns >= 1 else { throw ValidationError("--columns must be at least 1, got \(columns)") }
        if hintsFrom != nil && hints != nil { throw ValidationError("give --hints-from or --hints, not both") }
        if !gen.controlTexts.isEmpty && hintsFrom == nil && hints == nil {
            throw ValidationError("ControlNets need hints: --hints-from test (held-out images) or --hints FILE")
        }
        if let hint, HintKind(rawValue: hint) == nil {
            throw ValidationError("--hint \(hint): choose one of " + HintKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if label != nil && prompt != nil { throw ValidationError("give --label or --prompt, not both") }
        do { try PathGuard.checkKinds(outputs) } catch { throw ValidationError("\(error)") }
    }

    var outputs: [(option: String, path: String)] { [("--grid", grid)] + (out.map { [("--out", $0)] } ?? []) }

    func run() throws {
        // --data is read only for --hints-from.
        let data = hintsFrom == nil ? [] : dataFlags.spec(resize: true).inputFiles.map { (option: "--data", path: $0) }
        try PathGuard.check(outputs: outputs, inputs: try gen.inputs() + (hints.map { [("--hints", $0)] } ?? []) + data)
        try OutputReplacement.check([("--grid", grid, .png)] + (out.map { [("--out", $0, .samples)] } ?? []))
        try PathGuard.checkWritableParents(outputs)
        let comm = try gen.startRanks()
        defer { comm.finalize() }
        try gen.abortingOnError(comm) { try generate(comm: comm) }
    }

    /// The ranks' work, after they agreed on the command line.
    private func generate(comm: any Communicator) throws {
        let generator = try gen.loadGenerator()
        let config = generator.config, S = config.imageSize
        var hintValues: [Float]?, labels: [Int]?, n = count
        if let split = hintsFrom {
            let set = try HeldOutHints.load(dataFlags.spec(resize: true), split: split, kind: hint.flatMap(HintKind.init),
                                            count: count, imageSize: S, imageChannels: config.inChannels,
                                            hintChannels: config.hintChannels, seed: gen.seed)
            hintValues = set.hints; n = set.count
            labels = try generator.labels(for: set)
        } else if let path = hints {
            let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
            guard let info = file.info("hints"), info.shape.count == 4, info.shape[1] == config.hintChannels,
                  info.shape[2] == S, info.shape[3] == S, info.shape[0] >= 1 else {
                throw ValidationError("\(path): needs a tensor `hints` of shape [N >= 1, \(config.hintChannels), \(S), \(S)]")
            }
            n = min(count, info.shape[0])
            if n < count && comm.isRoot { print("note: --hints \(path) holds \(n) hint(s), fewer than --count \(count): sampling \(n)") }
            let values = Array(try file.floats("hints").prefix(n * config.hintChannels * S * S))
            // Hints are documented as [0, 1]; anything else (NaN, Inf, 5.0) is a broken file, not a hint.
            if let i = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
                throw ValidationError("--hints \(path): tensor `hints` holds \(values[i]) at element \(i); hints must be finite and in [0, 1]")
            }
            hintValues = values
        }
        if let label {
            guard config.numClasses > 0, (0...config.numClasses).contains(label) else {
                throw ValidationError("--label needs a class config and a value in 0...\(config.numClasses) (\(config.numClasses) = none)")
            }
            labels = Array(repeating: label, count: n)
        }
        if let prompt {
            guard config.numClasses > 0 else { throw ValidationError("--prompt needs a class-conditional model; \(gen.base) has no classes") }
            guard let v = generator.vocabulary else {
                throw ValidationError("--prompt: \(gen.base) holds no prompt vocabulary (it was not trained on prompts); use --label")
            }
            guard let l = v.label(of: prompt) else { throw ValidationError("--prompt: \(v.unknownPromptMessage(prompt))") }
            labels = Array(repeating: l < 0 ? config.numClasses : Int(l), count: n)
        }
        // Every rank holds all n images (the gather): refuse a count or batch that cannot fit before allocating.
        do {
            try MemoryPlan.checkGeneration(config: config, count: n, batchSize: gen.batchSize,
                                           workers: gen.settings.threads ?? GenerationPlan.defaultThreads, imageSets: 1)
        } catch { throw ValidationError("\(error)") }
        let started = Date()
        let what = comm.size > 1 ? "sampled (rank 0's share)" : "sampled"
        let images = try generator.generate(count: n, hints: hintValues, labels: labels, settings: gen.settings,
                                            comm: comm) { done, total in
            if comm.isRoot { reportProgress(what, done, total) }
        }
        guard comm.isRoot else { return }
        let samplePanel = GridPanel(images, range: -1...1, channels: config.inChannels)
        let panels = hintValues.map { [GridPanel($0, range: 0...1, channels: config.hintChannels), samplePanel] } ?? [samplePanel]
        try ImageGrid.writePNG(panels, count: n, height: S, width: S, columns: columns, to: URL(fileURLWithPath: grid))
        if let out {
            var w = SafeTensorsWriter()
            try w.add("images", shape: [n, config.inChannels, S, S], floats: images)
            if let hintValues { try w.add("hints", shape: [n, config.hintChannels, S, S], floats: hintValues) }
            if let labels { try w.add("labels", shape: [n], int64s: labels.map(Int64.init)) }
            try w.write(to: URL(fileURLWithPath: out), metadata: ["config": config.json, "sampler": "\(gen.sampler.rawValue)",
                                                                  "steps": "\(gen.steps)", "seed": "\(gen.seed)"])
        }
        let workers = gen.settings.threads ?? GenerationPlan.defaultThreads
        print(String(format: "wrote %@ (%d samples, %@ %d steps, %.1f s on %d rank(s) x %d thread(s))%@", grid, n,
                     gen.sampler.rawValue, gen.sampler == .ddpm ? 1000 : gen.steps, Date().timeIntervalSince(started),
                     comm.size, workers, out.map { " and " + $0 } ?? ""))
    }
}
