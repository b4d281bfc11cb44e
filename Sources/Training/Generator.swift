// Image generation with a base UNet and any number of ControlNets: DDPM or DDIM, guidance windows, per-ControlNet
// scales, classifier-free guidance and guess mode. Used by `controlnet sample`, `controlnet eval` and the
// validation previews during training.
import Foundation
import Kernels
import Model
import SafeTensors

public struct GenerationSettings: Sendable {
    public var sampler = SamplerSettings()
    /// Controls apply while the trajectory is between these fractions (0 = first step, 1 = last).
    public var guidanceStart = 0.0, guidanceEnd = 1.0
    /// Classifier-free guidance scale (class configs); 1 = conditional prediction only.
    public var cfgScale: Float = 1
    /// Guess mode: the ControlNets see no label and their residuals are weighted 0.825^(K-1-k), shallow ones least;
    /// with CFG the control goes to the conditional branch only (as the ControlNet reference does).
    public var guessMode = false
    public var batchSize = 64
    public init() {}
}

public final class Generator {
    public struct Control {
        public let net: ControlNet
        public let params: FloatBuffer
        public var scale: Float
        public init(net: ControlNet, params: FloatBuffer, scale: Float) { self.net = net; self.params = params; self.scale = scale }
    }

    public let config: ModelConfig
    public let unet: UNet
    public let base: FloatBuffer
    public var controls: [Control]
    let arenas = StepArenas()
    let sampler = DiffusionSampler()

    public init(config: ModelConfig, base: FloatBuffer, controls: [Control]) {
        self.config = config; self.base = base; self.controls = controls
        unet = UNet(config: config)
    }

    /// Loads the base from a weight file (its config from the metadata) and each ControlNet ("FILE" or "FILE:SCALE").
    public static func load(base path: String, controls specs: [String]) throws -> Generator {
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
        let config = try WeightFile.config(of: file)
        let unet = UNet(config: config)
        let base = FloatBuffer(count: unet.parameterCount)
        try WeightFile.load(file, table: unet.table, into: base.pointer, expecting: config)
        var controls: [Control] = []
        for spec in specs {
            var filePath = spec, scale: Float = 1
            if let colon = spec.lastIndex(of: ":"), let s = Float(spec[spec.index(after: colon)...]) {
                filePath = String(spec[..<colon]); scale = s
            }
            let cf = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: filePath))
            let net = ControlNet(config: config)
            let params = FloatBuffer(count: net.parameterCount)
            try WeightFile.load(cf, table: net.table, into: params.pointer, expecting: config)
            controls.append(Control(net: net, params: params, scale: scale))
        }
        return Generator(config: config, base: base, controls: controls)
    }

    var perSample: Int { config.inChannels * config.imageSize * config.imageSize }
    var hintPerSample: Int { config.hintChannels * config.imageSize * config.imageSize }

    /// hints: (count, hint_channels, S, S) in [0, 1], required when there are ControlNets; labels: (count) or nil.
    /// Returns images (count, C, S, S) in [-1, 1]. `progress(done, total)` reports finished samples.
    public func generate(count: Int, hints: [Float]?, labels: [Int]?, settings: GenerationSettings,
                         progress: ((Int, Int) -> Void)? = nil) -> [Float] {
        let active = controls.filter { $0.scale != 0 }
        precondition(active.isEmpty || hints?.count == count * hintPerSample, "hints: (count, C, S, S) needed")
        var images = [Float]()
        images.reserveCapacity(count * perSample)
        var start = 0
        let hintBuffer = FloatBuffer(count: settings.batchSize * hintPerSample)
        while start < count {
            let n = min(settings.batchSize, count - start)
            if let hints {
                hints.withUnsafeBufferPointer {
                    hintBuffer.pointer.update(from: $0.baseAddress! + start * hintPerSample, count: n * hintPerSample)
                }
            }
            let batchLabels = labels.map { Array($0[start..<(start + n)]) }
            let batch = sampler.sample(count: n, perSample: perSample, settings: settings.sampler, firstIndex: start) { x, point in
                denoise(x, n: n, point: point, hint: hintBuffer.pointer, labels: batchLabels, active: active, settings: settings)
            }
            images += batch
            start += n
            progress?(start, count)
        }
        return images
    }

    private func denoise(_ x: UnsafeMutablePointer<Float>, n: Int, point: SamplingPoint, hint: UnsafeMutablePointer<Float>,
                         labels: [Int]?, active: [Control], settings: GenerationSettings) -> UnsafePointer<Float> {
        arenas.reset()
        let t = [Int](repeating: point.t, count: n)
        let frozen = WeightSource(params: base.pointer, grads: nil)
        let inWindow = point.fractionBefore >= settings.guidanceStart && point.fractionAfter <= settings.guidanceEnd + 1e-9
        let useCFG = config.numClasses > 0 && labels != nil && settings.cfgScale != 1
        // Residuals of every active ControlNet for this step (guess mode: computed without the label).
        var residuals: [ControlResiduals] = []
        if inWindow {
            for c in active {
                let controlLabels = settings.guessMode ? nil : labels
                let r = c.net.forward(WeightSource(params: c.params.pointer, grads: nil), x: x, hint: hint, t: t,
                                      labels: controlLabels, arenas: arenas)
                if settings.guessMode {
                    let k = r.count
                    for (i, p) in r.enumerated() {
                        Elementwise.scale(count: c.net.residualCount(i, batch: n), alpha: Float(pow(0.825, Double(k - 1 - i))), x: p)
                    }
                }
                residuals.append(ControlResiduals(residuals: r, scale: c.scale))
            }
        }
        let cond = unet.forward(frozen, x: x, t: t, labels: labels, controls: residuals, arenas: arenas)
        guard useCFG else { return UnsafePointer(cond) }
        let none = [Int](repeating: config.numClasses, count: n)
        let uncond = unet.forward(frozen, x: x, t: t, labels: none, controls: settings.guessMode ? [] : residuals,
                                  arenas: arenas)
        let s = settings.cfgScale
        for i in 0..<(n * perSample) { cond[i] = uncond[i] + s * (cond[i] - uncond[i]) }
        return UnsafePointer(cond)
    }
}
