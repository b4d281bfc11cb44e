// `controlnet train-base` and `controlnet train-controlnet`: parse the flags into TrainOptions, check them before
// any file is read, make the communicator, install the stop signals and hand the run to the library's Trainer.
import ArgumentParser
import CEarlySignals
import Foundation
import Synchronization
import Datasets
import Distributed
import Kernels
import Model
import Training

struct TrainingFlags: ParsableArguments {
    @OptionGroup var model: ModelFlags
    @OptionGroup var dataFlags: DataFlags
    @Flag(help: "Resample the dataset's images to the config's image size.")
    var resize = false
    @Option(name: .customLong("batch-size"), help: "Samples per rank per micro-step.")
    var batchSize = 64
    @Option(help: "Micro-steps per optimizer step (the all-reduce happens once, after the last).")
    var gradAccum = 1
    @Option(help: "Clip the global gradient norm (after the all-reduce) to this; 0 disables.")
    var maxGradNorm: Double = 1.0
    @Option(help: "Peak learning rate.")
    var lr: Double = 1e-4
    @Option(help: "Linear warmup steps.")
    var warmupSteps = 0
    @Option(help: "constant or cosine (decays to --min-lr-fraction of --lr at the last step).")
    var lrSchedule: LRScheduleKind = .constant
    @Option(help: "Floor of the cosine schedule as a fraction of --lr.")
    var minLrFraction: Double = 0
    @Option(help: "AdamW decoupled weight decay.")
    var weightDecay: Double = 1e-2
    @Option(help: "Epochs to train (default 1 when --max-steps is not given).")
    var epochs: Double?
    @Option(help: "Optimizer steps to train.")
    var maxSteps: Int?
    @Option(help: "Seed of the data order, noise, timesteps and initialisation.")
    var seed: UInt64 = 0
    @Option(help: "Probability of replacing the label with 'no label' (class configs; for classifier-free guidance).")
    var promptDropout: Double = 0
    @Option(help: "Run directory: metrics.jsonl, weights, checkpoints/, validation/.")
    var out = "runs/train"
    @Option(help: "Play N ranks in this one process (no MPI) and average their gradients, as N MPI ranks would.")
    var simulateRanks = 1
    @Option(help: "Steps between progress lines and metric records.")
    var logEvery = 20
    @Option(help: "Steps between cross-rank weight checksums.")
    var checksumEvery = 200
    @Option(help: "Write a sharded checkpoint every N steps.")
    var checkpointEvery: Int?
    @Option(help: "Keep at most K checkpoints (older ones are deleted after a new one is committed).")
    var checkpointsTotalLimit: Int?
    @Option(help: "Resume from 'latest' (the newest valid checkpoint in --out; none: start fresh) or a checkpoint directory.")
    var resume: String?
    @Flag(help: "Replace an earlier run's outputs in --out (checkpoints, metrics, weights, previews) instead of refusing.")
    var overwrite = false
    @Option(help: "Sample validation previews every N steps into OUT/validation/.")
    var validationSteps: Int?
    @Option(help: "Held-out hints in each validation preview.")
    var validationCount = 16
    @Option(help: "Keep an EMA of the trained weights with this decay (e.g. 0.999; diffusers' EMAModel schedule): the output and the previews use it, the raw weights are written beside it.")
    var emaDecay: Double?
    @Option(help: "Weight each sample's loss by min-SNR-gamma (e.g. 5).")
    var snrGamma: Double?
    @Option(help: "epsilon or v (base training; a ControlNet takes its base's).")
    var predictionType: String?
    @Option(help: "1 shards the AdamW moments across the MPI ranks (ZeRO-1): optimizer memory per rank falls by the rank count.")
    var zero = 0
    @Option(help: "Add the consistency loss (ControlNet++) with this weight: the condition extracted from the one-step estimate of the image must match the hint.")
    var consistencyWeight: Double?
    @Option(help: "Only samples with a timestep up to this get the consistency loss.")
    var consistencyMaxT = 200
    @Option(help: "This fraction of each micro-batch draws its timestep from 0...--consistency-max-t, so that it gets the consistency loss.")
    var consistencyFraction = 0.0
    @Option(help: "What the consistency loss compares the estimate's extracted map with: hint (the 0/1 condition, as ControlNet++) or image (the same extractor's soft map of the clean training image, whose minimum is the real image).")
    var consistencyTarget: ConsistencyTarget = .hint
    @Option(help: ArgumentHelp("Testing aid: make gradients non-finite at STEP[:RANK].", visibility: .hidden))
    var injectNonfinite: [String] = []
    @Option(help: "Conv and attention products: fp32 (default) or bf16 (bf16 operands, fp32 sums; weights, optimizer and checkpoints stay fp32).")
    var precision: Precision = .fp32
    @OptionGroup var watchdog: WatchdogFlags

    /// The options of a run in `mode`; `base` is the frozen base (ControlNet) and `initFrom` base training's start.
    @Option(help: "Held-out data for the validation previews (default: the test split of --data; paired data: --data itself).")
    var validationData: String?

    func options(mode: TrainingMode, base: String? = nil, initFrom: String? = nil, hint: String? = nil) -> TrainOptions {
        var o = TrainOptions()
        o.mode = mode; o.config = model.config; o.base = base; o.initFrom = initFrom
        o.data = dataFlags.data; o.dataDir = dataFlags.dataDir; o.resize = resize; o.hint = hint
        o.imageColumn = dataFlags.imageColumn; o.conditioningColumn = dataFlags.conditioningImageColumn
        o.captionColumn = dataFlags.captionColumn; o.skipBadImages = dataFlags.skipBadImages
        o.resizeFilter = dataFlags.resizeFilter.rawValue; o.validationData = validationData
        o.emaDecay = emaDecay; o.snrGamma = snrGamma; o.predictionType = predictionType; o.zero = zero
        o.consistencyWeight = consistencyWeight; o.consistencyMaxT = consistencyMaxT; o.consistencyFraction = consistencyFraction
        o.consistencyTarget = consistencyTarget
        o.batchSize = batchSize; o.gradAccum = gradAccum; o.maxGradNorm = maxGradNorm == 0 ? nil : maxGradNorm   // 0 disables; anything else is validated
        o.lr = lr; o.warmupSteps = warmupSteps; o.lrSchedule = lrSchedule; o.minLRFraction = minLrFraction
        o.weightDecay = weightDecay; o.epochs = epochs; o.maxSteps = maxSteps; o.seed = seed
        o.promptDropout = promptDropout; o.out = out; o.simulateRanks = simulateRanks; o.logEvery = logEvery
        o.checksumEvery = checksumEvery; o.checkpointEvery = checkpointEvery
        o.checkpointsTotalLimit = checkpointsTotalLimit; o.resume = resume; o.validationSteps = validationSteps
        o.validationCount = validationCount; o.injectNonfinite = injectNonfinite; o.overwrite = overwrite
        o.precision = precision
        o.stallWarning = watchdog.stallWarning; o.collectiveTimeout = watchdog.collectiveTimeout
        return o
    }

    /// Checks that need no more than the file system's word that a path exists.
    func check(_ options: TrainOptions) throws {
        for (flag, path) in [("--base", options.base), ("--init-from", options.initFrom)] {
            if let path, !FileManager.default.fileExists(atPath: path) {
                throw ValidationError("\(flag): \(path) does not exist")
            }
        }
        do { try options.validate(config: try model.load()) } catch { throw ValidationError("\(error)") }
        if simulateRanks > 1 && Communicators.launchedByMPI {
            throw ValidationError("--simulate-ranks is the single-process debug mode; under mpirun use real ranks")
        }
    }
}

struct TrainBase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-base", abstract: "Train the whole UNet (a DDPM) on a dataset.")
    @OptionGroup var flags: TrainingFlags
    @Option(help: "Start from these UNet weights instead of a fresh initialisation.")
    var initFrom: String?

    var options: TrainOptions { flags.options(mode: .base, initFrom: initFrom) }
    func validate() throws { try flags.check(options) }
    func run() throws { try TrainRunner.run(options) }
}

struct TrainControlNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-controlnet", abstract: "Train a ControlNet beside a frozen base UNet.")
    @OptionGroup var flags: TrainingFlags
    @Option(help: "The frozen base UNet's weights (safetensors).")
    var base: String
    @Option(help: ArgumentHelp("Hint kind computed from the images: " + HintKind.allCases.map(\.rawValue).joined(separator: ", ")
        + " (default: paired data's own condition images; canny for image datasets)."))
    var hint: String?

    var options: TrainOptions { flags.options(mode: .controlnet, base: base, hint: hint) }
    func validate() throws { try flags.check(options) }
    func run() throws { try TrainRunner.run(options) }
}

/// Makes the communicator and the BLAS threads, installs the stop signals, runs the trainer, and turns a failure
/// into one clear message per rank (and the job's end under MPI).
enum TrainRunner {
    static func run(_ options: TrainOptions) throws {
        let base = try Communicators.makeDefault()
        let comm: any Communicator
        do {
            comm = try CollectiveWatch.wrap(base, stallWarning: options.stallWarning,
                                            collectiveTimeout: options.collectiveTimeout, advice: timeoutAdvice)
        } catch {
            base.abort(code: 1, message: "cannot start the collective watchdog: \(error)")
        }
        defer { comm.finalize() }
        // Ranks sharing a node split its cores between their OpenBLAS threads (unless OPENBLAS_NUM_THREADS is set).
        let blas = BLASRuntime.configureThreadsForThisProcess()
        StopSignals.install()   // (again: main installed it before parsing; harmless)
        do {
            let trainer = try Trainer(options: options, comm: comm)
            // Stalls go to metrics.jsonl (rank 0) beside the steps, so a recovered outage stays visible.
            comm.attachedWatchdog?.setRecorder { [log = trainer.log] in try? log.metric($0.metric) }
            trainer.log.info("OpenBLAS: \(BLASRuntime.coreName) kernels, \(blas.threads) thread(s) per rank (\(blas.source))")
            if options.precision == .bf16 { trainer.log.info(BF16Kernel.slowPathWarning ?? BF16Kernel.pathDescription) }
            _ = try trainer.run(stopRequested: { StopSignals.requested })
        } catch {
            Console.error("[rank \(comm.rank)] error: \(error)\n")
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw ExitCode.failure
        }
    }
}

extension TrainRunner {
    static let timeoutAdvice = "The last committed checkpoint is intact: once the cause is fixed (a network link, a "
        + "stopped or overloaded node) rerun with --resume latest. If this operation can legitimately take that "
        + "long, raise --collective-timeout"
}

/// SIGTERM, SIGINT and SIGUSR1 ask the trainer to finish the current step (or micro-step), checkpoint and exit 0
/// (Slurm sends TERM before a preemption or the time limit; mpirun forwards USR1 at once). A second signal more
/// than two seconds after the first exits immediately; sooner, it is the same request arriving by another route
/// (Slurm can deliver one TERM twice on multi-node jobs) and is ignored.
enum StopSignals {
    private static let count = Atomic<Int>(0)
    private static let firstAt = Atomic<Int>(0)   // CLOCK_MONOTONIC seconds of the first signal
    static var requested: Bool { count.load(ordering: .relaxed) > 0 }

    static func install() {
        for sig in [SIGTERM, SIGINT, SIGUSR1] {
            signal(sig) { _ in
                // Only async-signal-safe calls here: clock_gettime, atomics, _exit.
                let now = StopSignals.monotonicSeconds()
                if StopSignals.count.add(1, ordering: .relaxed).newValue == 1 {
                    StopSignals.firstAt.store(now, ordering: .relaxed)
                } else if now - StopSignals.firstAt.load(ordering: .relaxed) > 2 {
                    _exit(130)
                }
            }
        }
        // A request that came during start-up was counted by CEarlySignals' handler (it is the first one now), or
        // is still pending after the re-exec and reaches this handler when unblocked.
        if ces_early_requests() > 0 && count.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged {
            firstAt.store(monotonicSeconds(), ordering: .relaxed)
        }
        ces_unblock_stop_signals()
    }

    /// CLOCK_MONOTONIC in whole seconds (async-signal-safe).
    static func monotonicSeconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int(ts.tv_sec)
    }
}

extension ConsistencyTarget: ExpressibleByArgument {}
