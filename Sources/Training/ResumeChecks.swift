// The checks a checkpoint passes before a run continues from it: that it belongs to this run (mode, config, base,
// data, size, seed), and that continuing from it loses nothing - it is not past the run's last step, it is the step
// its directory is named for, and no later checkpoint in the run directory would outlive the continued run (where
// `--resume latest` would pick it up again and --checkpoints-total-limit would delete the new ones instead).
import Foundation
import Model

extension Trainer {
    /// Refuses a checkpoint that does not belong to this run: another mode, config, base weights, data, size or
    /// seed. The world size may differ.
    static func checkBelongs(_ loaded: CheckpointStore.Loaded, options: TrainOptions, config: ModelConfig,
                             baseSHA256: String?, trainable: Int, fingerprint: DataFingerprint) throws {
        let m = loaded.manifest, path = loaded.directory.appendingPathComponent(CheckpointManifest.fileName).path
        // A format-1 manifest protects nothing but its shards: its step, data position and options could have been
        // edited. Its weights stay readable (export), but training does not continue from unverifiable state.
        if m.format != CheckpointManifest.formatName {
            throw CheckpointError(path, "is format '\(m.format)' (an older build's, without a self-checksum or data fingerprint), which a run does not resume from; resume it with the build that wrote it, or write its weights with `controlnet export \(loaded.directory.path) --out W.safetensors` (a base run can start from them with --init-from W.safetensors)")
        }
        if m.mode != options.mode {
            throw CheckpointError(path, "is a \(m.mode.rawValue) checkpoint; this run trains \(options.mode.rawValue)")
        }
        if m.config != config.json {
            throw CheckpointError(path, "was made with another model config:\n  checkpoint: \(m.config)\n  this run:   \(config.json)")
        }
        if m.baseSHA256 != baseSHA256 {
            throw CheckpointError(path, "was trained on another base model (SHA-256 \(m.baseSHA256 ?? "none") vs \(baseSHA256 ?? "none") of \(options.base ?? "-")); resume with the base it was made with")
        }
        guard m.trainableCount == trainable else {
            throw CheckpointError(path, "holds \(m.trainableCount) trainable parameters; this model has \(trainable)")
        }
        // The EMA is part of the run's output: resuming without it would write raw weights where the EMA was, and
        // another decay would average on a different horizon than the checkpoint's EMA so far.
        if let decay = m.options.emaDecay, loaded.ema != nil, options.emaDecay != decay {
            throw CheckpointError(path, options.emaDecay == nil
                ? "keeps an EMA of the weights (--ema-decay \(decay)); resume with --ema-decay \(decay), or export its weights and start a new run without it"
                : "keeps an EMA with --ema-decay \(decay); this run asks for \(options.emaDecay!); resume with --ema-decay \(decay)")
        }
        if m.options.seed != options.seed {
            throw CheckpointError(path, "was made with --seed \(m.options.seed); resuming with --seed \(options.seed) would change the data order and noise")
        }
        if let data = m.data, data != fingerprint {
            let option = data.hint != fingerprint.hint ? "--hint \(data.hint ?? "-")" : "--data \(data.source)\(data.resize ? " --resize" : "")"
            throw CheckpointError(path, "was trained on other data (\(data.source), \(data.count) images, hint \(data.hint ?? "none"), content SHA-256 \(data.contentSHA256.prefix(16))...; this run has \(fingerprint.source), \(fingerprint.count) images, hint \(fingerprint.hint ?? "none"), \(fingerprint.contentSHA256.prefix(16))...); resume with \(option)")
        }
    }

    /// Refuses to continue from a checkpoint past the run's last step (the final weights would be replaced by older
    /// ones), from one whose directory names another step than its manifest, and - for an explicit --resume DIR -
    /// while OUT/checkpoints holds committed checkpoints past it.
    static func checkResumePoint(_ loaded: CheckpointStore.Loaded, options: TrainOptions, totalSteps: Int,
                                 worldSize: Int, out: URL) throws {
        let m = loaded.manifest, dir = loaded.directory
        if let named = CheckpointStore.stepNumber(dir.lastPathComponent), named != m.step {
            throw CheckpointError(dir.path, "is named for step \(named) but its manifest records step \(m.step) (renamed, or copied over another); resume from a directory named \(CheckpointManifest.directoryName(step: m.step))")
        }
        if m.step > totalSteps {
            let past = "this run ends at step \(totalSteps), but the checkpoint it resumes (\(dir.path)) is already at step \(m.step): a run does not continue past its last step (it would write that checkpoint's weights as a \(totalSteps)-step run's)"
            guard options.maxSteps == nil else {
                throw OptionsError(option: "--max-steps", message: "\(past). Pass --max-steps \(m.step) or more, or resume from a checkpoint at or before step \(totalSteps)")
            }
            // --epochs counts global batches, so more ranks (or a larger --batch-size) make fewer steps.
            throw OptionsError(option: "--epochs", message: "\(past); --epochs gives fewer steps at this run's global batch (\(options.batchSize) per rank x \(worldSize) ranks; the checkpoint's run had \(m.worldSize) ranks). Replace --epochs with --max-steps \(m.step) or more")
        }
        guard options.resume != "latest" else { return }
        let root = CheckpointStore.root(out)
        // Counted as --resume latest and the total limit count them (interrupted writes and renamed copies are not).
        let later = CheckpointStore.namedManifests(root).filter { $0.1.step > m.step }
        guard !later.isEmpty else { return }
        let names = later.map(\.0.lastPathComponent)
        throw OptionsError(option: "--resume", message: "\(root.path) holds checkpoints past step \(m.step), the one resumed from (\(names.prefix(4).joined(separator: ", "))\(names.count > 4 ? ", ..." : "")). Continuing from step \(m.step) would leave them beside the new ones: --resume latest would later pick them up, and --checkpoints-total-limit would delete the new checkpoints instead. Move them out of \(root.path) first (they stay valid checkpoints elsewhere), or continue from the newest with --resume latest")
    }
}
