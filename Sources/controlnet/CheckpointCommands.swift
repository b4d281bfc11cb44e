// `controlnet export` (a checkpoint's trainable weights as a standalone safetensors file, under the spec's names)
// and `controlnet diff-weights` (how far apart two weight files are, tensor by tensor).
import ArgumentParser
import Foundation
import Kernels
import Datasets
import Model
import SafeTensors
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's ControlNet (or base UNet) weights alone, for sampling and for PyTorch.")
    @Argument(help: "Checkpoint directory (OUT/checkpoints/step-XXXXXXXX) or 'latest:OUT'.")
    var checkpoint: String
    @Option(help: "Output .safetensors file.")
    var out: String
    @Flag(help: "Write the checkpoint's EMA of the weights instead of the raw weights.")
    var ema = false
    @Flag(help: "Replace --out if it exists (by default an existing file, such as another run's weights, is refused).")
    var overwrite = false

    func validate() throws {
        do { try PathGuard.checkKinds([("--out", out)]) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let loaded = try CheckpointStore.locate(checkpoint) { Console.error("\($0)\n") }
        let dir = loaded.directory
        // Every file read, by path and inode: a hard link to a shard elsewhere is the shard.
        try PathGuard.check(outputs: [("--out", out)], inputs: CheckpointStore.files(of: loaded).map { ("checkpoint", $0) })
        try PathGuard.checkWritableParents([("--out", out)])
        if !overwrite && FileManager.default.fileExists(atPath: out) {
            throw ValidationError("--out: \(out) exists; choose a new file, or pass --overwrite to replace it")
        }
        let config = try ModelConfig.decode(json: Data(loaded.manifest.config.utf8), source: dir.path)
        let table = loaded.manifest.mode == .base ? UNet(config: config).table : ControlNet(config: config).table
        guard table.count == loaded.params.count else {
            throw ValidationError("\(dir.path): \(loaded.params.count) parameters, but the config's network has \(table.count)")
        }
        var metadata = ["steps": "\(loaded.manifest.step)", "checkpoint": dir.path]
        if let prompts = loaded.manifest.data?.prompts {
            metadata[PromptList.metadataKey] = PromptList.encode(PromptVocabulary(prompts: prompts))
        }
        let weights: [Float]
        if ema {
            guard let e = loaded.ema else {
                throw ValidationError("\(dir.path) holds no EMA (its run had no --ema-decay); export the raw weights without --ema")
            }
            weights = e
            metadata["weights"] = "EMA"
        } else {
            weights = loaded.params
        }
        if let p = loaded.manifest.options.predictionType ?? (loaded.manifest.mode == .base ? "epsilon" : nil) {
            metadata[PredictionType.metadataKey] = p
        }
        try weights.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return }   // never empty: the table has parameters
            try WeightFile.save(kind: loaded.manifest.mode == .base ? .unet : .controlnet, table: table,
                                params: base, config: config, to: URL(fileURLWithPath: out), extraMetadata: metadata)
        }
        print("wrote \(out): \(table.entries.count) tensors, \(table.count) parameters from step \(loaded.manifest.step)")
    }
}

struct DiffWeights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff-weights", abstract: "Compare two weight files tensor by tensor; prints JSON.")
    @Argument var a: String
    @Argument var b: String
    @Option(help: "Exit 1 if the largest absolute difference exceeds this (default: report only).")
    var tolerance: Double?

    func validate() throws {
        // NaN compares false with everything, so `maxAbs <= nan` would fail every comparison; a negative or
        // infinite tolerance is no tolerance either.
        if let tolerance {
            do { try OptionBounds.number("--tolerance", tolerance, 0...Double.greatestFiniteMagnitude) } catch {
                throw ValidationError("\(error) (a finite, non-negative largest absolute difference, e.g. 0 or 1e-6)")
            }
        }
    }

    func run() throws {
        let fa = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: a))
        let fb = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: b))
        let report: WeightDiffReport
        do { report = try WeightDiff.compare(fa, fb, nameA: a, nameB: b) } catch let e as WeightDiffError {
            throw ValidationError(e.description)
        }
        print(report.json)
        let maxAbs = report.maxAbsDiff
        if let tolerance, !(maxAbs <= tolerance) { throw ExitCode.failure }
    }
}
