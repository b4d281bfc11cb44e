// Everything a training run is configured by: a Codable value (snake_case JSON, printed at start and stored in
// checkpoints) with a validation that rejects bad combinations before any work.
import Foundation
import Datasets
import Distributed
import Model

public struct TrainOptions: Codable, Sendable, Equatable {
    public var mode: TrainingMode = .controlnet
    /// Preset name or JSON path; for ControlNet training the base file's config must match it.
    public var config: String = "mnist"
    /// The frozen base UNet's weights (ControlNet training).
    public var base: String?
    /// Weights base training starts from instead of a fresh initialisation.
    public var initFrom: String?
    public var data: String = "mnist5k"
    public var dataDir: String = "data"
    /// Resample dataset images to the config's image size.
    public var resize = false
    public var hint: String = "canny"
    public var batchSize: Int = 64
    public var gradAccum: Int = 1
    public var maxGradNorm: Double? = 1.0
    public var lr: Double = 1e-4
    public var warmupSteps: Int = 0
    public var lrSchedule: LRScheduleKind = .constant
    public var minLRFraction: Double = 0.0
    public var weightDecay: Double = 1e-2
    public var epochs: Double?
    public var maxSteps: Int?
    public var seed: UInt64 = 0
    public var promptDropout: Double = 0
    public var out: String = "runs/train"
    public var simulateRanks: Int = 1
    public var logEvery: Int = 20
    public var checksumEvery: Int = 200
    public var checkpointEvery: Int?
    public var checkpointsTotalLimit: Int?
    public var resume: String?
    public var validationSteps: Int?
    public var validationCount: Int = 16
    /// Testing aid: make one rank's gradients non-finite at these steps ("STEP" or "STEP:RANK").
    public var injectNonfinite: [String] = []
    /// Seconds a collective or checkpoint write may wait before its rank warns (again every as many); 0: never.
    public var stallWarning: Double = 60
    /// Seconds after which a rank still waiting ends the job, naming the operation and step; 0: never.
    public var collectiveTimeout: Double = 600

    enum CodingKeys: String, CodingKey {
        case mode, config, base, data, hint, lr, epochs, seed, out, resume, resize
        case initFrom = "init_from"
        case dataDir = "data_dir", batchSize = "batch_size", gradAccum = "grad_accum", maxGradNorm = "max_grad_norm"
        case warmupSteps = "warmup_steps", lrSchedule = "lr_schedule", minLRFraction = "min_lr_fraction"
        case weightDecay = "weight_decay", maxSteps = "max_steps", promptDropout = "prompt_dropout"
        case simulateRanks = "simulate_ranks", logEvery = "log_every", checksumEvery = "checksum_every"
        case checkpointEvery = "checkpoint_every", checkpointsTotalLimit = "checkpoints_total_limit"
        case validationSteps = "validation_steps", validationCount = "validation_count"
        case injectNonfinite = "inject_nonfinite"
        case stallWarning = "stall_warning", collectiveTimeout = "collective_timeout"
    }

    public init() {}

    /// Checks option combinations that need no files; `OptionsError` names the option and the fix.
    public func validate(config model: ModelConfig) throws {
        func fail(_ option: String, _ why: String) throws -> Never { throw OptionsError(option: option, message: why) }
        if batchSize < 1 { try fail("--batch-size", "must be at least 1 (per rank), got \(batchSize)") }
        if gradAccum < 1 { try fail("--grad-accum", "must be at least 1, got \(gradAccum)") }
        if let g = maxGradNorm, !(g > 0) { try fail("--max-grad-norm", "must be positive (omit it to disable clipping), got \(g)") }
        if !(lr > 0) || !lr.isFinite { try fail("--lr", "must be a positive number, got \(lr)") }
        if warmupSteps < 0 { try fail("--warmup-steps", "must be >= 0, got \(warmupSteps)") }
        if !(0...1).contains(minLRFraction) { try fail("--min-lr-fraction", "must be in [0, 1], got \(minLRFraction)") }
        if weightDecay < 0 { try fail("--weight-decay", "must be >= 0, got \(weightDecay)") }
        if epochs != nil && maxSteps != nil { try fail("--epochs", "give --epochs or --max-steps, not both") }
        if let e = epochs, !(e > 0) { try fail("--epochs", "must be positive, got \(e)") }
        if let s = maxSteps, s < 1 { try fail("--max-steps", "must be at least 1, got \(s)") }
        if !(0..<1).contains(promptDropout) { try fail("--prompt-dropout", "must be in [0, 1), got \(promptDropout)") }
        if promptDropout > 0 && model.numClasses == 0 {
            try fail("--prompt-dropout", "needs a class-conditional config (num_classes > 0); this config has none")
        }
        if simulateRanks < 1 { try fail("--simulate-ranks", "must be at least 1, got \(simulateRanks)") }
        if logEvery < 1 { try fail("--log-every", "must be at least 1, got \(logEvery)") }
        if checksumEvery < 1 { try fail("--checksum-every", "must be at least 1, got \(checksumEvery)") }
        if let c = checkpointEvery, c < 1 { try fail("--checkpoint-every", "must be at least 1, got \(c)") }
        if let k = checkpointsTotalLimit, k < 1 { try fail("--checkpoints-total-limit", "must be at least 1, got \(k)") }
        if let v = validationSteps, v < 1 { try fail("--validation-steps", "must be at least 1, got \(v)") }
        if validationCount < 1 { try fail("--validation-count", "must be at least 1, got \(validationCount)") }
        if mode == .controlnet && base == nil {
            try fail("--base", "ControlNet training needs the frozen base UNet's weights (e.g. models/mnist-base.safetensors)")
        }
        if mode == .controlnet && initFrom != nil { try fail("--init-from", "is for base training; a ControlNet starts from --base") }
        if mode == .base && base != nil { try fail("--base", "is for ControlNet training; base training starts from --init-from") }
        for spec in injectNonfinite where Int(spec.split(separator: ":").first ?? "") == nil {
            try fail("--inject-nonfinite", "'\(spec)' is not STEP or STEP:RANK")
        }
        if let (option, why) = WatchdogSettings.problem(stallWarning: stallWarning, collectiveTimeout: collectiveTimeout) {
            try fail(option, why)
        }
    }

    /// The options as pretty, sorted JSON (printed at start, stored in weight files and checkpoints). Non-finite
    /// numbers, which validation refuses anyway, are written as strings rather than failing.
    public var jsonDescription: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The step's settings these options give, for a run of `totalSteps` steps.
    public func stepSettings(totalSteps: Int) -> StepSettings {
        var s = StepSettings(schedule: LRSchedule(base: lr, warmup: warmupSteps, total: totalSteps, kind: lrSchedule,
                                                  minFraction: minLRFraction))
        s.gradAccum = gradAccum
        s.ranksPerProcess = simulateRanks
        s.maxGradNorm = maxGradNorm
        s.adam = AdamWConfig(weightDecay: Float(weightDecay))
        s.injectNonfinite = injectNonfinite.compactMap { spec in
            let parts = spec.split(separator: ":").map { Int($0) }
            guard let first = parts.first, let step = first else { return nil }
            return (step, parts.count > 1 ? parts[1] : nil)
        }
        return s
    }

    /// The data these options read.
    public var dataSpec: DataSpec { DataSpec(source: data, directory: dataDir, resize: resize) }
}

public struct OptionsError: Error, CustomStringConvertible {
    public let option: String
    public let message: String
    public init(option: String, message: String) { self.option = option; self.message = message }
    public var description: String { "\(option): \(message)" }
}
