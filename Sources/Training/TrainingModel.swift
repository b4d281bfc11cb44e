// What the trainer trains: either the whole UNet (base training) or a ControlNet beside a frozen UNet. Both expose
// one flat trainable arena (params, grads), so the all-reduce and the optimizer never need to know which, and a
// network pass (forward, then backward from the gradient of the prediction); the loss around it is the
// objective's (DiffusionObjective), the same for both.
import Foundation
import Kernels
import Model
import SafeTensors

public enum TrainingMode: String, Codable, Sendable { case base, controlnet }

public protocol TrainingModel: AnyObject {
    var mode: TrainingMode { get }
    var config: ModelConfig { get }
    /// The trainable set: one arena and its named views.
    var trainableTable: ParameterTable { get }
    var params: FloatBuffer { get }
    var grads: FloatBuffer { get }
    /// Frozen weights (the base UNet in ControlNet training), never written.
    var frozen: FloatBuffer? { get }
    var arenas: StepArenas { get }
    /// Of the convolutions' and attention's products in forward and backward (TrainingStep sets it from its
    /// settings); weights, gradients and the optimizer are fp32 either way.
    var precision: Precision { get set }
    /// The network's prediction for `batch.xT` (N, in, S, S), in `arenas`; keeps what backward needs.
    func forward(_ batch: TrainingBatch) -> UnsafeMutablePointer<Float>
    /// Backward of the last forward from dPrediction (N, in, S, S): weight gradients are ADDED into `grads`.
    func backward(dPrediction: UnsafeMutablePointer<Float>)
    /// Writes the trainable weights as a standalone weight file (spec names, config in metadata).
    func saveTrainable(to url: URL, metadata: [String: String]) throws
}

/// Base DDPM training: every UNet weight trains.
public final class BaseTraining: TrainingModel {
    public let mode = TrainingMode.base
    public let config: ModelConfig
    public let unet: UNet
    public let params: FloatBuffer, grads: FloatBuffer
    public let arenas = StepArenas()
    public var precision = Precision.fp32
    public var frozen: FloatBuffer? { nil }
    public var trainableTable: ParameterTable { unet.table }

    /// Zero weights: the caller loads or initialises `params`.
    public init(config: ModelConfig) {
        self.config = config
        unet = UNet(config: config)
        params = FloatBuffer(count: unet.parameterCount)
        grads = FloatBuffer(count: unet.parameterCount)
    }

    private var weights: WeightSource { WeightSource(params: params.pointer, grads: grads.pointer, precision: precision) }

    public func forward(_ b: TrainingBatch) -> UnsafeMutablePointer<Float> {
        unet.forward(weights, x: b.xT, t: b.t, labels: b.labels, arenas: arenas)
    }

    public func backward(dPrediction: UnsafeMutablePointer<Float>) {
        unet.backward(weights, dOut: dPrediction, arenas: arenas)
    }

    public func saveTrainable(to url: URL, metadata: [String: String]) throws {
        try WeightFile.save(kind: .unet, table: unet.table, params: params.pointer, config: config, to: url,
                            extraMetadata: metadata)
    }
}

/// ControlNet training: the UNet is frozen (no weight-gradient work at all); only the ControlNet trains.
public final class ControlNetTraining: TrainingModel {
    public let mode = TrainingMode.controlnet
    public let config: ModelConfig
    public let unet: UNet
    public let control: ControlNet
    public let base: FloatBuffer
    public let params: FloatBuffer, grads: FloatBuffer
    public let arenas = StepArenas()
    public var precision = Precision.fp32
    public var frozen: FloatBuffer? { base }
    public var trainableTable: ParameterTable { control.table }
    /// Conditioning scale used in training (1, as the reference).
    public var scale: Float = 1

    /// `base` holds the UNet weights (already loaded). The ControlNet starts as a copy of it (zero convs zero,
    /// hint convs from `seed`, PyTorch's default conv init).
    public init(config: ModelConfig, base: FloatBuffer, seed: UInt64) {
        self.config = config
        unet = UNet(config: config)
        control = ControlNet(config: config)
        precondition(base.count == unet.parameterCount)
        self.base = base
        params = FloatBuffer(count: control.parameterCount)
        grads = FloatBuffer(count: control.parameterCount)
        Initializers.initialize(control.table, params.pointer, seed: seed)
        control.initialize(params: params.pointer, from: unet, unetParams: base.pointer)
    }

    private var frozenWeights: WeightSource { WeightSource(params: base.pointer, grads: nil, precision: precision) }
    private var weights: WeightSource { WeightSource(params: params.pointer, grads: grads.pointer, precision: precision) }

    public func forward(_ b: TrainingBatch) -> UnsafeMutablePointer<Float> {
        // The residuals are computed when the UNet adds them and not kept (backward reads the zero convs'
        // inputs, not their outputs).
        control.encode(weights, x: b.xT, hint: b.hint, t: b.t, labels: b.labels, arenas: arenas)
        let ws = weights, control = control
        let residuals = ControlResiduals(scale: scale) { k, r, scratch in control.residual(k, ws, into: r, scratch: scratch) }
        return unet.forward(frozenWeights, x: b.xT, t: b.t, labels: b.labels, controls: [residuals], arenas: arenas)
    }

    public func backward(dPrediction: UnsafeMutablePointer<Float>) {
        let dRes = unet.backward(frozenWeights, dOut: dPrediction, arenas: arenas)
        control.backward(weights, dResiduals: dRes.all, scale: scale, arenas: arenas)
    }

    public func saveTrainable(to url: URL, metadata: [String: String]) throws {
        try WeightFile.save(kind: .controlnet, table: control.table, params: params.pointer, config: config, to: url,
                            extraMetadata: metadata)
    }
}

/// Builds the model a run trains, with its weights: base training from --init-from or a fresh initialisation
/// (seeded); ControlNet training from the frozen base in --base, the ControlNet copied from it.
public enum TrainingModels {
    public static func make(_ options: TrainOptions, config: ModelConfig) throws -> TrainingModel {
        switch options.mode {
        case .base:
            let base = BaseTraining(config: config)
            if let path = options.initFrom {
                try load(path, option: "--init-from", table: base.unet.table, into: base.params, config: config)
            } else {
                Initializers.initialize(base.unet.table, base.params.pointer, seed: options.seed)
            }
            return base
        case .controlnet:
            guard let path = options.base else {
                throw OptionsError(option: "--base", message: "ControlNet training needs the frozen base UNet's weights")
            }
            let unet = UNet(config: config)
            let weights = FloatBuffer(count: unet.parameterCount)
            try load(path, option: "--base", table: unet.table, into: weights, config: config)
            return ControlNetTraining(config: config, base: weights, seed: options.seed)
        }
    }

    /// Reads a UNet weight file into `buffer`, the error naming the option that gave the path.
    static func load(_ path: String, option: String, table: ParameterTable, into buffer: FloatBuffer,
                     config: ModelConfig) throws {
        do {
            let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
            try WeightFile.load(file, table: table, into: buffer.pointer, expecting: config)
        } catch {
            throw OptionsError(option: option, message: "\(error)")
        }
    }
}
