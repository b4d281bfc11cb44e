// What the trainer trains: either the whole UNet (base training) or a ControlNet beside a frozen UNet. Both expose
// one flat trainable arena (params, grads) so the all-reduce and the optimizer never need to know which.
import Foundation
import Kernels
import Model
import SafeTensors

/// One micro-batch of training inputs on this rank. All buffers are (N, C, S, S) flat, owned by the caller.
public struct TrainingBatch {
    public var x0: UnsafeMutablePointer<Float>      // (N, in, S, S) clean images in [-1, 1]
    public var eps: UnsafeMutablePointer<Float>     // (N, in, S, S) the noise to predict
    public var xT: UnsafeMutablePointer<Float>      // (N, in, S, S) filled by the model: q_sample(x0, t, eps)
    public var hint: UnsafeMutablePointer<Float>    // (N, hint, S, S) in [0, 1] (unused by base training)
    public var t: [Int]                             // (N)
    public var labels: [Int]?                       // (N) or nil
}

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
    /// Forward + backward of one micro-batch; gradients (of loss * lossScale) are ADDED into `grads`.
    /// Returns the unscaled mean loss.
    func accumulate(_ batch: TrainingBatch, lossScale: Float) -> Float
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
    public var frozen: FloatBuffer? { nil }
    public var trainableTable: ParameterTable { unet.table }
    let schedule = NoiseSchedule()

    public init(config: ModelConfig) {
        self.config = config
        unet = UNet(config: config)
        params = FloatBuffer(count: unet.parameterCount)
        grads = FloatBuffer(count: unet.parameterCount)
    }

    public func accumulate(_ b: TrainingBatch, lossScale: Float) -> Float {
        arenas.reset()
        let per = config.inChannels * config.imageSize * config.imageSize, n = b.t.count * per
        schedule.qSample(x0: b.x0, eps: b.eps, t: b.t, perSample: per, into: b.xT)
        let ws = WeightSource(params: params.pointer, grads: grads.pointer)
        let out = unet.forward(ws, x: b.xT, t: b.t, labels: b.labels, arenas: arenas)
        let loss = MSELoss.forward(count: n, prediction: out, target: b.eps)
        let dOut = arenas.grads.takeZeroed(n)
        MSELoss.backward(count: n, prediction: out, target: b.eps, scale: lossScale, dPrediction: dOut)
        unet.backward(ws, dOut: dOut, arenas: arenas)
        return loss
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
    public var frozen: FloatBuffer? { base }
    public var trainableTable: ParameterTable { control.table }
    /// Conditioning scale used in training (1, as the reference).
    public var scale: Float = 1
    let schedule = NoiseSchedule()

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

    public func accumulate(_ b: TrainingBatch, lossScale: Float) -> Float {
        arenas.reset()
        let per = config.inChannels * config.imageSize * config.imageSize, n = b.t.count * per
        schedule.qSample(x0: b.x0, eps: b.eps, t: b.t, perSample: per, into: b.xT)
        let frozenWS = WeightSource(params: base.pointer, grads: nil)
        let ws = WeightSource(params: params.pointer, grads: grads.pointer)
        let residuals = control.forward(ws, x: b.xT, hint: b.hint, t: b.t, labels: b.labels, arenas: arenas)
        let out = unet.forward(frozenWS, x: b.xT, t: b.t, labels: b.labels,
                               controls: [ControlResiduals(residuals: residuals, scale: scale)], arenas: arenas)
        let loss = MSELoss.forward(count: n, prediction: out, target: b.eps)
        let dOut = arenas.grads.takeZeroed(n)
        MSELoss.backward(count: n, prediction: out, target: b.eps, scale: lossScale, dPrediction: dOut)
        let dRes = unet.backward(frozenWS, dOut: dOut, arenas: arenas)
        control.backward(ws, dResiduals: dRes.all, scale: scale, arenas: arenas)
        return loss
    }

    public func saveTrainable(to url: URL, metadata: [String: String]) throws {
        try WeightFile.save(kind: .controlnet, table: control.table, params: params.pointer, config: config, to: url,
                            extraMetadata: metadata)
    }
}

/// Parameter initialisation as PyTorch's defaults, so a freshly built network trains like the reference:
/// conv/linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)),
/// GroupNorm weight 1 and bias 0, embeddings N(0, 1). Each tensor draws from its own seeded stream.
public enum Initializers {
    public static func initialize(_ table: ParameterTable, _ params: UnsafeMutablePointer<Float>, seed: UInt64) {
        var fanIn = 1    // a bias follows its weight in registration order and shares its fan-in
        for e in table.entries {
            let p = params + e.offset
            var rng = RandomStream(seed, RandomPurpose.initialization.rawValue, UInt64(e.offset))
            if e.name.hasPrefix("label_embed") {
                for i in 0..<e.count { p[i] = rng.normal() }
            } else if e.name.contains("norm") {
                p.update(repeating: e.name.hasSuffix(".weight") ? 1 : 0, count: e.count)
            } else {
                if e.shape.count > 1 { fanIn = e.shape.dropFirst().reduce(1, *) }
                let bound = 1 / Double(fanIn).squareRoot()
                for i in 0..<e.count { p[i] = Float((rng.uniform() * 2 - 1) * bound) }
            }
        }
    }
}
