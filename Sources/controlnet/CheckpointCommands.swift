// `controlnet export` (a checkpoint's trainable weights as a standalone safetensors file, under the spec's names)
// and `controlnet diff-weights` (how far apart two weight files are, tensor by tensor).
import ArgumentParser
import Foundation
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

    func run() throws {
        let loaded = try CheckpointStore.locate(checkpoint) { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
        let dir = loaded.directory
        try PathGuard.check(outputs: [("--out", out)], inputs: [("checkpoint", dir.path)])
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

    /// JSON numbers must be finite: an infinite or NaN difference is reported as a string.
    static func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "\"\(x)\"" }

    func run() throws {
        let fa = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: a))
        let fb = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: b))
        guard Set(fa.names) == Set(fb.names) else {
            let onlyA = Set(fa.names).subtracting(fb.names).sorted(), onlyB = Set(fb.names).subtracting(fa.names).sorted()
            throw ValidationError("tensor names differ: only in \(a): \(onlyA.prefix(5)); only in \(b): \(onlyB.prefix(5))")
        }
        // A value that is NaN or infinite on one side only (or NaN on both) is an infinite difference: two files
        // are only "close" when their finite values are.
        var maxAbs = 0.0, worst = "", identical = true, count = 0, nonFinite = 0
        for name in fa.names.sorted() {
            let x = try fa.floats(name), y = try fb.floats(name)
            guard x.count == y.count else { throw ValidationError("\(name): \(x.count) vs \(y.count) values") }
            for i in 0..<x.count {
                if x[i].bitPattern != y[i].bitPattern { identical = false }
                let d: Double
                if x[i].isFinite && y[i].isFinite {
                    d = abs(Double(x[i]) - Double(y[i]))
                } else {
                    nonFinite += 1
                    d = x[i] == y[i] ? 0 : .infinity    // equal infinities agree; NaN never does
                }
                if d > maxAbs { maxAbs = d; worst = name }
            }
            count += x.count
        }
        print("{\"tensors\": \(fa.names.count), \"values\": \(count), \"bit_identical\": \(identical), \"non_finite_values\": \(nonFinite), \"max_abs_diff\": \(Self.number(maxAbs)), \"worst_tensor\": \"\(worst)\"}")
        if let tolerance, !(maxAbs <= tolerance) { throw ExitCode.failure }
    }
}
