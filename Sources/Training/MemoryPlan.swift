// What a run will need in memory, checked before anything large is allocated: a config or a batch size that
// cannot fit on this machine (or under its `ulimit -v`) is refused with the numbers and the option to change,
// instead of ending in a failed allocation minutes later.
import Foundation
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
    public static var availableBytes: Double {
        Double(min(MemoryLimits.physicalBytes, MemoryLimits.addressSpaceBytes ?? Int.max))
    }

    /// Refuses a run whose estimate exceeds what is available, naming --config or `batchOption`.
    public static func check(config: ModelConfig, configName: String, mode: TrainingMode, samples: Int,
                             batchOption: String = "--batch-size") throws {
        let cost = ModelCost(config: config)
        let need = trainingBytes(cost, mode: mode, samples: samples)
        let available = availableBytes
        func gb(_ b: Double) -> String { String(format: "%.2f GB", b / 1e9) }
        if need.weights > available {
            throw OptionsError(option: "--config", message: "\(configName) has \(cost.unetParameters) UNet and \(cost.controlNetParameters) ControlNet parameters, which need about \(gb(need.weights)) before any activation; this process may use \(gb(available)). Choose a smaller model (model_channels, channel_mult, num_res_blocks)")
        }
        if need.weights + need.activations > available {
            let fit = max(0, Int((available - need.weights) / max(1, need.activations / Double(samples))))
            throw OptionsError(option: batchOption, message: "\(samples) samples per step need about \(gb(need.activations)) of activations with \(configName) (\(gb(need.weights)) of weights besides); this process may use \(gb(available)). Use at most about \(fit) per step, or --grad-accum to keep the global batch")
        }
    }
}
