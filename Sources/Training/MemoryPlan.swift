// What a run will need in memory, checked before anything large is allocated: a config or a batch size that
// cannot fit on this machine (or under its `ulimit -v`) is refused with the numbers and the option to change,
// instead of ending in a failed allocation minutes later.
import Foundation
import Kernels
import Model

public enum MemoryPlan {
    /// Bytes a process needs, roughly: weights (frozen once; trainable four times: weights, gradients, AdamW m
    /// and v), and the activations of `samples` samples per step.
    public static func trainingBytes(_ cost: ModelCost, mode: TrainingMode, samples: Int) -> (weights: Double, activations: Double) {
        let unet = Double(cost.unetParameters), control = Double(cost.controlNetParameters)
        let weights = mode == .base ? 16 * unet : 4 * unet + 16 * control
        return (weights, 4 * cost.activationFloatsPerSample * Double(samples))
    }

    /// The memory this process may use: physical memory, or the address-space limit when lower.
    /// Under `ulimit -v` what counts is what is left of the address space: the runtime, the libraries, OpenBLAS's
    /// buffers and the arenas' reservations already hold part of it, and each thread still to start takes a stack,
    /// so a limit the plan alone would fit can still end in a failed allocation (a trap, not an error) later.
    public static var availableBytes: Double {
        let left = MemoryLimits.addressSpaceBytes.map { $0 - MemoryFootprint.virtualBytes - reserveForThreads } ?? Int.max
        return Double(max(0, min(MemoryLimits.physicalBytes, left)))
    }

    /// Where `availableBytes` comes from under `ulimit -v`, for refusals (empty without a limit).
    static var limitNote: String {
        guard let limit = MemoryLimits.addressSpaceBytes else { return "" }
        return String(format: " (the address-space limit, ulimit -v, is %.2f GB, and %.2f GB of it is already mapped or kept for threads)",
                      Double(limit) / 1e9, Double(MemoryFootprint.virtualBytes + reserveForThreads) / 1e9)
    }

    /// Address space kept back under a limit for what starts after the check: the watchdog, heartbeat and worker
    /// threads' stacks (8 MiB each by default) and allocator slack.
    static let reserveForThreads = 96 << 20

    /// Refuses a run whose estimate exceeds what is available, naming --config or `batchOption`.
    public static func check(config: ModelConfig, configName: String, mode: TrainingMode, samples: Int,
                             batchOption: String = "--batch-size") throws {
        let cost = ModelCost(config: config)
        let need = trainingBytes(cost, mode: mode, samples: samples)
        let available = availableBytes
        func gb(_ b: Double) -> String { String(format: "%.2f GB", b / 1e9) }
        if need.weights > available {
            throw OptionsError(option: "--config", message: "\(configName) has \(cost.unetParameters) UNet and \(cost.controlNetParameters) ControlNet parameters, which need about \(gb(need.weights)) before any activation; this process may use \(gb(available))\(limitNote). Choose a smaller model (model_channels, channel_mult, num_res_blocks)")
        }
        if need.weights + need.activations > available {
            let fit = max(0, Int((available - need.weights) / max(1, need.activations / Double(samples))))
            throw OptionsError(option: batchOption, message: "\(samples) samples per step need about \(gb(need.activations)) of activations with \(configName) (\(gb(need.weights)) of weights besides); this process may use \(gb(available))\(limitNote). Use at most about \(fit) per step, or --grad-accum to keep the global batch")
        }
    }
}

extension MemoryPlan {
    /// Bytes generation needs, roughly: the `count`-sized results (`imageSets` image tensors: sample 1, eval 3
    /// with its floors; the hints twice, as the caller's array and the workers' shared copy; the labels) and the
    /// activations of one pass of min(batch, count) samples per busy worker thread (the training estimate, an upper
    /// bound: a pass keeps no backward state).
    public static func generationBytes(_ cost: ModelCost, config: ModelConfig, count: Int, batchSize: Int, workers: Int,
                                       imageSets: Int) -> (results: Double, activations: Double) {
        let side = Double(config.imageSize * config.imageSize)
        let perSample = 4 * side * Double(imageSets * config.inChannels + 2 * config.hintChannels) + 8
        // A worker with no pass to take allocates nothing: at most ceil(count / batch) of them run.
        let busy = min(max(1, workers), count / max(1, batchSize) + (count % max(1, batchSize) == 0 ? 0 : 1))
        let pass = Double(min(batchSize, count)) * Double(max(1, busy))
        return (perSample * Double(count), 4 * cost.activationFloatsPerSample * pass)
    }

    /// Refuses a generation whose results or passes cannot fit, before anything count-sized is allocated,
    /// naming --count or --batch-size with the bytes needed and the bytes this process may use.
    public static func checkGeneration(config: ModelConfig, count: Int, batchSize: Int, workers: Int, imageSets: Int,
                                       available: Double = availableBytes) throws {
        let cost = ModelCost(config: config)
        let need = generationBytes(cost, config: config, count: count, batchSize: batchSize, workers: workers,
                                   imageSets: imageSets)
        let weights = 4 * Double(cost.unetParameters + cost.controlNetParameters)
        let gb = OptionBounds.gigabytes
        if weights + need.results > available {
            let fit = max(0, Int((available - weights) / max(1, need.results / Double(count)) * 0.5))
            throw OptionsError(option: "--count", message: "\(count) samples need \(OptionBounds.bytes(need.results)) for the images and hints alone; this process may use \(gb(available))\(limitNote). Ask for fewer per run (about \(fit) fit) and run several with other --seed values")
        }
        if weights + need.results + need.activations > available {
            let perSample = need.activations / Double(min(batchSize, count))
            let fit = max(0, Int((available - weights - need.results) / max(1, perSample)))
            throw OptionsError(option: "--batch-size", message: "\(min(batchSize, count)) samples per pass on up to \(max(1, workers)) worker thread(s) need \(OptionBounds.bytes(need.activations)) of activations besides \(gb(need.results)) of results; this process may use \(gb(available))\(limitNote). Use a --batch-size whose total over the threads stays under about \(fit), or fewer --threads")
        }
    }
}
