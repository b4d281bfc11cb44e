// Image generation with a base UNet and any number of ControlNets: DDPM or DDIM, guidance windows, per-ControlNet
// scales, classifier-free guidance and guess mode. Used by `controlnet sample`, `controlnet eval` and the
// validation previews during training.
import Foundation
import Datasets
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

/// A ControlNet on the command line: "FILE" (scale 1) or "FILE:SCALE", parsed in this one place.
public struct ControlSpec: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var scale: Float

    public init(path: String, scale: Float = 1) { self.path = path; self.scale = scale }

    /// The text after the last colon is the scale when it reads as a number (so paths with colons still work);
    /// a scale that is not finite is refused.
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let s = Float(text[text.index(after: colon)...]) {
            guard s.isFinite else {
                throw OptionsError(option: "--control", message: "\(text): the scale must be a finite number")
            }
            path = String(text[..<colon]); scale = s
        } else {
            path = text; scale = 1
        }
        guard !path.isEmpty else { throw OptionsError(option: "--control", message: "'\(text)' names no file") }
    }

    public var description: String { scale == 1 ? path : "\(path):\(scale)" }
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
    /// The prompts the model's labels index (from the weight files' metadata), or nil.
    public var vocabulary: PromptVocabulary?
    /// What the base predicts (its weight file's metadata; epsilon when it records none).
    public var prediction: PredictionType = .epsilon
    let arenas = StepArenas()
    let sampler = DiffusionSampler()

    public init(config: ModelConfig, base: FloatBuffer, controls: [Control]) {
        self.config = config; self.base = base; self.controls = controls
        unet = UNet(config: config)
    }

    /// Loads the base from a weight file (its config from the metadata) and each ControlNet.
    public static func load(base path: String, controls specs: [ControlSpec]) throws -> Generator {
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
        let config = try WeightFile.config(of: file)
        let unet = UNet(config: config)
        let base = FloatBuffer(count: unet.parameterCount)
        try WeightFile.load(file, table: unet.table, into: base.pointer, expecting: config)
        var controls: [Control] = []
        var vocabulary = try file.metadata[PromptList.metadataKey].map { try PromptList.decode($0, source: "--base \(path)") }
        for spec in specs {
            let cf = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: spec.path))
            let own = try cf.metadata[PromptList.metadataKey].map { try PromptList.decode($0, source: "--control \(spec.path)") }
            if let own, let v = vocabulary, own != v {
                throw OptionsError(option: "--control", message: "\(spec.path) was trained with another prompt vocabulary than --base \(path) (\(own.count) vs \(v.count) prompts); its labels would mean other prompts")
            }
            vocabulary = vocabulary ?? own
            let net = ControlNet(config: config)
            let params = FloatBuffer(count: net.parameterCount)
            try WeightFile.load(cf, table: net.table, into: params.pointer, expecting: config)
            controls.append(Control(net: net, params: params, scale: spec.scale))
        }
        let g = Generator(config: config, base: base, controls: controls)
        g.vocabulary = vocabulary
        if let p = file.metadata[PredictionType.metadataKey] {
            guard let type = PredictionType(rawValue: p) else {
                throw OptionsError(option: "--base", message: "\(path) records prediction_type '\(p)', which is not one of epsilon, v")
            }
            g.prediction = type
        }
        return g
    }

    /// The model's labels for held-out samples: their prompts looked up in the model's vocabulary (the data's own
    /// label numbers may index another one); -1 and unlabelled data give "no label". nil for unconditional models.
    public func labels(for set: HintSet) throws -> [Int]? {
        guard config.numClasses > 0, let labels = set.labels else { return nil }
        guard let data = set.vocabulary else {
            return labels.map { (0..<config.numClasses).contains($0) ? $0 : config.numClasses }
        }
        guard let model = vocabulary else {
            throw OptionsError(option: "--base", message: "the data has prompts but the model's weight files hold no prompt vocabulary to map them to")
        }
        return try labels.map { l in
            guard l >= 0 else { return config.numClasses }
            let prompt = data.prompts[l]
            guard let m = model.label(of: prompt) else {
                throw OptionsError(option: "--data", message: model.unknownPromptMessage(prompt))
            }
            return Int(m)
        }
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
            var samplerSettings = settings.sampler
            samplerSettings.prediction = prediction
            let batch = sampler.sample(count: n, perSample: perSample, settings: samplerSettings, firstIndex: start) { x, point in
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
