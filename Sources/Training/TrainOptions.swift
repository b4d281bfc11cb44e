// Everything a training run is configured by: a Codable value (snake_case JSON, printed at start and stored in
// checkpoints) with a validation that rejects bad combinations before any work.
import Foundation
import Datasets
import Distributed
import Kernels
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
    /// Hint kind computed from the images; nil: paired data's own conditions, canny for image datasets.
    public var hint: String?
    /// Paired data: other names for the image, condition and prompt columns; leave out unreadable rows.
    public var imageColumn: String?, conditioningColumn: String?, captionColumn: String?
    public var skipBadImages = false
    /// Paired data: the resampling filter (bilinear or area).
    public var resizeFilter = "bilinear"
    /// Held-out data for the validation previews (default: the test split of --data; for paired data, --data).
    public var validationData: String?
    /// Keep an EMA of the trainable weights with this decay (diffusers' EMAModel schedule); nil keeps none.
    public var emaDecay: Double?
    /// min-SNR-gamma loss weighting; nil for the plain MSE.
    public var snrGamma: Double?
    /// epsilon or v (base training; ControlNet training takes the base's).
    public var predictionType: String?
    /// 1 shards the AdamW moments across the MPI ranks (ZeRO-1).
    public var zero = 0
    /// The consistency loss's weight (ControlNet++); nil or 0: none.
    public var consistencyWeight: Double?
    /// Only samples with t <= this get the consistency loss.
    public var consistencyMaxT = 200
    /// The first ceil(F x batch) samples of each micro-batch draw their timestep from 0...max-t, so that this
    /// fraction of every batch gets the consistency loss (0: only the samples whose t falls there anyway).
    public var consistencyFraction = 0.0
    /// What the extracted map is compared with: the hint, or the soft map of the clean image.
    public var consistencyTarget: ConsistencyTarget = .hint
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
    /// Replace the outputs of an earlier run in `out` (checkpoints, metrics, weights, previews). How this run
    /// starts, not what it is: not part of the recorded options.
    public var overwrite = false
    public var validationSteps: Int?
    public var validationCount: Int = 16
    /// Of the convolutions' and attention's products. Not part of what a checkpoint belongs to (weights and moments
    /// are fp32 either way), so a run may resume in the other precision; every rank must use the same.
    public var precision: Precision = .fp32
    /// Testing aid: make one rank's gradients non-finite at these steps ("STEP" or "STEP:RANK").
    public var injectNonfinite: [String] = []
    /// Seconds a collective or checkpoint write may wait before its rank warns (again every as many); 0: never.
    public var stallWarning: Double = 60
    /// Seconds after which a rank still waiting ends the job, naming the operation and step; 0: never.
    public var collectiveTimeout: Double = 600

    /// CaseIterable: the ranks agree on every key (RankAgreement), present or not.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, config, base, data, hint, lr, epochs, seed, out, resume, resize
        case initFrom = "init_from", imageColumn = "image_column", conditioningColumn = "conditioning_image_column"
        case captionColumn = "caption_column", skipBadImages = "skip_bad_images", resizeFilter = "resize_filter"
        case validationData = "validation_data", emaDecay = "ema_decay", snrGamma = "snr_gamma"
        case predictionType = "prediction_type", zero, consistencyWeight = "consistency_weight"
        case consistencyMaxT = "consistency_max_t", consistencyFraction = "consistency_fraction"
        case consistencyTarget = "consistency_target"
        case dataDir = "data_dir", batchSize = "batch_size", gradAccum = "grad_accum", maxGradNorm = "max_grad_norm"
        case warmupSteps = "warmup_steps", lrSchedule = "lr_schedule", minLRFraction = "min_lr_fraction"
        case weightDecay = "weight_decay", maxSteps = "max_steps", promptDropout = "prompt_dropout"
        case simulateRanks = "simulate_ranks", logEvery = "log_every", checksumEvery = "checksum_every"
        case checkpointEvery = "checkpoint_every", checkpointsTotalLimit = "checkpoints_total_limit"
        case validationSteps = "validation_steps", validationCount = "validation_count"
        case injectNonfinite = "inject_nonfinite", precision
        case stallWarning = "stall_warning", collectiveTimeout = "collective_timeout"
    }

    public init() {}

    /// Every key is optional when reading (options recorded by an older version lack the newer ones, which then
    /// take their defaults); unknown keys are ignored here because manifests, not users, hold these.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        let d = TrainOptions()
        mode = try get(.mode, d.mode); config = try get(.config, d.config)
        base = try c.decodeIfPresent(String.self, forKey: .base); initFrom = try c.decodeIfPresent(String.self, forKey: .initFrom)
        data = try get(.data, d.data); dataDir = try get(.dataDir, d.dataDir); resize = try get(.resize, d.resize)
        hint = try c.decodeIfPresent(String.self, forKey: .hint)
        imageColumn = try c.decodeIfPresent(String.self, forKey: .imageColumn)
        conditioningColumn = try c.decodeIfPresent(String.self, forKey: .conditioningColumn)
        captionColumn = try c.decodeIfPresent(String.self, forKey: .captionColumn)
        skipBadImages = try get(.skipBadImages, d.skipBadImages); resizeFilter = try get(.resizeFilter, d.resizeFilter)
        validationData = try c.decodeIfPresent(String.self, forKey: .validationData)
        emaDecay = try c.decodeIfPresent(Double.self, forKey: .emaDecay)
        snrGamma = try c.decodeIfPresent(Double.self, forKey: .snrGamma)
        predictionType = try c.decodeIfPresent(String.self, forKey: .predictionType)
        zero = try get(.zero, d.zero)
        consistencyWeight = try c.decodeIfPresent(Double.self, forKey: .consistencyWeight)
        consistencyMaxT = try get(.consistencyMaxT, d.consistencyMaxT)
        consistencyFraction = try get(.consistencyFraction, d.consistencyFraction)
        consistencyTarget = try get(.consistencyTarget, d.consistencyTarget)
        stallWarning = try get(.stallWarning, d.stallWarning); collectiveTimeout = try get(.collectiveTimeout, d.collectiveTimeout)
        batchSize = try get(.batchSize, d.batchSize); gradAccum = try get(.gradAccum, d.gradAccum)
        maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm); lr = try get(.lr, d.lr)
        warmupSteps = try get(.warmupSteps, d.warmupSteps); lrSchedule = try get(.lrSchedule, d.lrSchedule)
        minLRFraction = try get(.minLRFraction, d.minLRFraction); weightDecay = try get(.weightDecay, d.weightDecay)
        epochs = try c.decodeIfPresent(Double.self, forKey: .epochs); maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps)
        seed = try get(.seed, d.seed); promptDropout = try get(.promptDropout, d.promptDropout); out = try get(.out, d.out)
        simulateRanks = try get(.simulateRanks, d.simulateRanks); logEvery = try get(.logEvery, d.logEvery)
        checksumEvery = try get(.checksumEvery, d.checksumEvery)
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: .checkpointEvery)
        checkpointsTotalLimit = try c.decodeIfPresent(Int.self, forKey: .checkpointsTotalLimit)
        resume = try c.decodeIfPresent(String.self, forKey: .resume)
        validationSteps = try c.decodeIfPresent(Int.self, forKey: .validationSteps)
        validationCount = try get(.validationCount, d.validationCount)
        injectNonfinite = try get(.injectNonfinite, d.injectNonfinite)
        precision = try get(.precision, d.precision)
    }

    /// Upper bounds on the count options: far above any real run, low enough that no value can make a step
    /// run for hours between stop checks or a loop run forever.
    public static let countLimits: [String: Int] = [
        "--batch-size": 65_536, "--grad-accum": 4_096, "--simulate-ranks": 1_024, "--max-steps": 1_000_000_000,
        "--warmup-steps": 1_000_000_000, "--log-every": 1_000_000_000, "--checksum-every": 1_000_000_000,
        "--checkpoint-every": 1_000_000_000, "--checkpoints-total-limit": 1_000_000, "--validation-steps": 1_000_000_000,
        "--validation-count": 10_000,
    ]

    /// --lr is in (0, maxLR]; --weight-decay in [0, maxWeightDecay].
    public static let maxLR = 10.0, maxWeightDecay = 100.0

    /// Checks option combinations that need no files; `OptionsError` names the option and the fix.
    public func validate(config model: ModelConfig) throws {
        func fail(_ option: String, _ why: String) throws -> Never { throw OptionsError(option: option, message: why) }
        func count(_ option: String, _ value: Int, min: Int) throws {
            if value < min { try fail(option, "must be at least \(min), got \(value)") }
            if let max = Self.countLimits[option], value > max { try fail(option, "must be at most \(max), got \(value)") }
        }
        func finite(_ option: String, _ value: Double) throws {
            if !value.isFinite { try fail(option, "must be a finite number, got \(value)") }
        }
        try count("--batch-size", batchSize, min: 1)
        try count("--grad-accum", gradAccum, min: 1)
        if let g = maxGradNorm { try finite("--max-grad-norm", g); if !(g > 0) { try fail("--max-grad-norm", "must be positive (0 disables clipping), got \(g)") } }
        try finite("--lr", lr)
        if !(lr > 0) { try fail("--lr", "must be a positive number, got \(lr)") }
        // Far above any learning rate that trains (1e-4 is usual); larger values only overflow the weights.
        if lr > Self.maxLR { try fail("--lr", "must be at most \(Self.maxLR), got \(lr) (1e-4 is usual)") }
        try count("--warmup-steps", warmupSteps, min: 0)
        try finite("--min-lr-fraction", minLRFraction)
        if !(0...1).contains(minLRFraction) { try fail("--min-lr-fraction", "must be in [0, 1], got \(minLRFraction)") }
        try finite("--weight-decay", weightDecay)
        if !(weightDecay >= 0) { try fail("--weight-decay", "must be >= 0, got \(weightDecay)") }
        if weightDecay > Self.maxWeightDecay {
            try fail("--weight-decay", "must be at most \(Self.maxWeightDecay), got \(weightDecay) (1e-2 is usual)")
        }
        // AdamW's decoupled decay multiplies every weight by 1 - lr x wd each step: at 1 or more it zeroes or
        // flips the sign of every weight, which no run wants.
        if lr * weightDecay >= 1 {
            try fail("--weight-decay", "with --lr \(lr), \(weightDecay) makes the per-step decay factor 1 - lr x wd = \(1 - lr * weightDecay), which zeroes or flips every weight; lr x wd must be below 1 (lower --weight-decay or --lr)")
        }
        if epochs != nil && maxSteps != nil { try fail("--epochs", "give --epochs or --max-steps, not both") }
        if let e = epochs {
            try finite("--epochs", e)
            if !(e > 0) || e > 1_000_000 { try fail("--epochs", "must be in (0, 1000000], got \(e)") }
        }
        if let s = maxSteps { try count("--max-steps", s, min: 1) }
        try finite("--prompt-dropout", promptDropout)
        if !(0..<1).contains(promptDropout) { try fail("--prompt-dropout", "must be in [0, 1), got \(promptDropout)") }
        if promptDropout > 0 && model.numClasses == 0 {
            try fail("--prompt-dropout", "needs a class-conditional config (num_classes > 0); this config has none")
        }
        try count("--simulate-ranks", simulateRanks, min: 1)
        try count("--log-every", logEvery, min: 1)
        try count("--checksum-every", checksumEvery, min: 1)
        if let c = checkpointEvery { try count("--checkpoint-every", c, min: 1) }
        if let k = checkpointsTotalLimit { try count("--checkpoints-total-limit", k, min: 1) }
        if let v = validationSteps { try count("--validation-steps", v, min: 1) }
        try count("--validation-count", validationCount, min: 1)
        if batchSize.multipliedReportingOverflow(by: simulateRanks * gradAccum).overflow {
            try fail("--batch-size", "the batch per step (\(batchSize) x \(simulateRanks) simulated ranks x \(gradAccum) micro-steps) is too large")
        }
        if mode == .controlnet && base == nil {
            try fail("--base", "ControlNet training needs the frozen base UNet's weights (e.g. models/mnist-base.safetensors)")
        }
        if mode == .controlnet && initFrom != nil { try fail("--init-from", "is for base training; a ControlNet starts from --base") }
        if mode == .base && base != nil { try fail("--base", "is for ControlNet training; base training starts from --init-from") }
        if let h = hint, HintKind(rawValue: h) == nil {
            try fail("--hint", "unknown hint kind '\(h)'; choose one of " + HintKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if ResizeFilter(rawValue: resizeFilter) == nil {
            try fail("--resize-filter", "'\(resizeFilter)' is not one of " + ResizeFilter.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let d = emaDecay {
            try finite("--ema-decay", d)
            if !(d > 0 && d < 1) { try fail("--ema-decay", "must be in (0, 1), e.g. 0.999; got \(d)") }
        }
        if let g = snrGamma {
            try finite("--snr-gamma", g)
            if !(g > 0) { try fail("--snr-gamma", "must be positive (5 is the usual value); got \(g)") }
        }
        if let p = predictionType, PredictionType(rawValue: p) == nil {
            try fail("--prediction-type", "'\(p)' is not one of " + PredictionType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let w = consistencyWeight {
            try finite("--consistency-weight", w)
            if w < 0 { try fail("--consistency-weight", "must be >= 0, got \(w)") }
            if w > 0 && mode != .controlnet { try fail("--consistency-weight", "is for ControlNet training") }
            if w > 0, let kind = hintKind, ConditionExtractor(kind) == nil {
                try fail("--consistency-weight", "hint kind '\(kind.rawValue)' has no differentiable extractor; it works with " + HintKind.allCases.filter { ConditionExtractor($0) != nil }.map(\.rawValue).joined(separator: ", "))
            }
            if w > 0 && hintKind == nil && mode == .controlnet {
                try fail("--consistency-weight", "needs a hint kind it can extract from an image (--hint canny, sobel, mask, blur, tile); paired data's own condition files have none")
            }
        }
        if !(0..<1000).contains(consistencyMaxT) { try fail("--consistency-max-t", "must be in 0...999, got \(consistencyMaxT)") }
        try finite("--consistency-fraction", consistencyFraction)
        if !(0...1).contains(consistencyFraction) { try fail("--consistency-fraction", "must be in [0, 1], got \(consistencyFraction)") }
        if !(0...1).contains(zero) { try fail("--zero", "must be 0 (off) or 1 (shard the AdamW moments), got \(zero)") }
        if resume != nil && overwrite { try fail("--overwrite", "cannot be combined with --resume: resuming keeps the run's files") }
        for spec in injectNonfinite {
            let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), parts.allSatisfy({ Int($0) != nil }) else {
                try fail("--inject-nonfinite", "'\(spec)' is not STEP or STEP:RANK")
            }
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
        s.precision = precision
        s.emaDecay = emaDecay
        s.zeroStage = zero
        s.injectNonfinite = injectNonfinite.compactMap { spec in
            let parts = spec.split(separator: ":").map { Int($0) }
            guard let first = parts.first, let step = first else { return nil }
            return (step, parts.count > 1 ? parts[1] : nil)
        }
        return s
    }

    /// The data these options read.
    public var dataSpec: DataSpec { spec(for: data) }

    /// The consistency loss these options ask for, or nil.
    public var consistency: ConsistencySettings? {
        guard let w = consistencyWeight, w > 0, let kind = hintKind, let e = ConditionExtractor(kind) else { return nil }
        return ConsistencySettings(weight: w, maxT: consistencyMaxT, extractor: e, target: consistencyTarget)
    }

    /// `source` read with these options' data settings (directory, resize, paired-data columns and filter).
    public func spec(for source: String) -> DataSpec {
        var s = DataSpec(source: source, directory: dataDir, resize: resize)
        s.imageColumn = imageColumn; s.conditioningColumn = conditioningColumn; s.captionColumn = captionColumn
        s.skipBadImages = skipBadImages; s.filter = ResizeFilter(rawValue: resizeFilter) ?? .bilinear
        return s
    }

    /// The hint kind to compute (nil: paired data's own conditions; base training computes none).
    public var hintKind: HintKind? {
        guard mode == .controlnet else { return nil }
        if let hint { return HintKind(rawValue: hint) }
        return dataSpec.isPaired ? nil : .canny
    }
}

public struct OptionsError: Error, CustomStringConvertible {
    public let option: String
    public let message: String
    public init(option: String, message: String) { self.option = option; self.message = message }
    public var description: String { "\(option): \(message)" }
}
