// The training objective, in one place for every kind of training: noise the clean images (q_sample), run the
// network on them, and take the loss against the target and its gradient, which the network then backpropagates.
// The target is the noise (epsilon prediction) or v = sqrt(ac) eps - sqrt(1 - ac) x0 (v prediction); the loss is
// the MSE over every element, or with --snr-gamma G the batch mean of min-SNR-G weights times each sample's MSE:
// w = min(SNR, G) / SNR for epsilon, min(SNR, G) / (SNR + 1) for v, SNR = ac / (1 - ac) (Hang et al. 2023;
// diffusers' train scripts).
import Foundation
import Kernels
import Model

/// The consistency loss (ControlNet++): at small timesteps, the condition extracted from the one-step estimate of
/// the clean image must match the hint.
public struct ConsistencySettings: Sendable {
    public var weight: Double
    /// Only samples with t <= maxT get it (their one-step estimate is close to an image).
    public var maxT: Int
    public var extractor: ConditionExtractor
    /// What the extracted map is compared with.
    public var target: ConsistencyTarget
    public init(weight: Double, maxT: Int, extractor: ConditionExtractor, target: ConsistencyTarget = .hint) {
        self.weight = weight; self.maxT = maxT; self.extractor = extractor; self.target = target
    }
}

/// The consistency loss's target map.
public enum ConsistencyTarget: String, Codable, Sendable, CaseIterable {
    /// The hint itself (0/1 edges for canny): ControlNet++'s comparison. Its minimum is not the real image: the
    /// cross-entropy against hard 0/1 edges always asks for more contrast than any real stroke has.
    case hint
    /// The same extractor's soft map of the clean training image the hint was computed from: zero loss and zero
    /// gradient exactly when the estimate's map equals the real image's, so it only pulls toward the data.
    case image
}

public struct DiffusionObjective: Sendable {
    public let schedule: NoiseSchedule
    public var prediction: PredictionType
    /// min-SNR-gamma, or nil for the plain MSE.
    public var snrGamma: Double?
    /// The consistency loss added to the diffusion loss, or nil.
    public var consistency: ConsistencySettings?

    public init(schedule: NoiseSchedule = NoiseSchedule(), prediction: PredictionType = .epsilon, snrGamma: Double? = nil,
                consistency: ConsistencySettings? = nil) {
        self.schedule = schedule; self.prediction = prediction; self.snrGamma = snrGamma; self.consistency = consistency
    }

    /// Per-sample loss weights for timesteps t (nil: plain MSE). SNR in float32 from the float64 schedule, as the
    /// reference computes it.
    public func weights(_ t: [Int]) -> [Float]? {
        guard let gamma = snrGamma.map(Float.init) else { return nil }
        return t.map { step in
            let ac = schedule.alphasCumprod[step]
            let snr = Float(ac / (1 - ac))
            return min(snr, gamma) / (prediction == .v ? snr + 1 : snr)
        }
    }

    /// Forward, loss and backward of one micro-batch: the gradients of (loss * lossScale) are ADDED into
    /// model.grads. Returns the unscaled loss.
    public func accumulate(_ model: TrainingModel, _ b: TrainingBatch, lossScale: Float) -> Float {
        let c = model.config
        model.arenas.reset()
        let per = c.inChannels * c.imageSize * c.imageSize, n = b.count * per
        schedule.qSample(x0: b.x0, eps: b.eps, t: b.t, perSample: per, into: b.xT)
        let prediction = model.forward(b)
        let target = self.target(b, perSample: per, arenas: model.arenas)
        let dPrediction = model.arenas.grads.takeZeroed(n)
        let extra = addConsistency(model, b, output: prediction, lossScale: lossScale, dPrediction: dPrediction)
        guard let w = weights(b.t) else {
            let loss = MSELoss.forward(count: n, prediction: prediction, target: target)
            MSELoss.backward(count: n, prediction: prediction, target: target, scale: lossScale, dPrediction: dPrediction)
            model.backward(dPrediction: dPrediction)
            return extra == 0 ? loss : Float(Double(loss) + extra)
        }
        // mean_i(w_i * mse_i): each sample's MSE weighted, its gradient scaled by w_i / N.
        var loss = 0.0
        let invN = 1 / Float(b.count)
        for i in 0..<b.count {
            let off = i * per
            loss += Double(w[i]) * Double(MSELoss.forward(count: per, prediction: prediction + off, target: target + off))
            MSELoss.backward(count: per, prediction: prediction + off, target: target + off, scale: lossScale * w[i] * invN,
                             dPrediction: dPrediction + off)
        }
        model.backward(dPrediction: dPrediction)
        return Float(loss / Double(b.count) + extra)
    }

    /// The consistency loss of the micro-batch (weighted; 0 without one): for each sample with t <= maxT, the
    /// one-step estimate x0 = (x_t - sqrt(1 - ac) eps) / sqrt(ac) (v: sqrt(ac) x_t - sqrt(1 - ac) v), on the 0...255
    /// scale (luma for RGB), through the extractor, against the hint's first channel (or, with target .image, the
    /// extractor's soft map of the clean image x0 on the same scale). Its gradient, scaled by
    /// lossScale * weight / (selected samples), is added into dPrediction, to flow back through the (frozen) UNet
    /// into the ControlNet exactly as the diffusion loss's does.
    func addConsistency(_ model: TrainingModel, _ b: TrainingBatch, output: UnsafeMutablePointer<Float>,
                        lossScale: Float, dPrediction: UnsafeMutablePointer<Float>) -> Double {
        guard let c = consistency, c.weight > 0 else { return 0 }
        let selected = b.t.indices.filter { b.t[$0] <= c.maxT }
        guard !selected.isEmpty else { return 0 }
        let cfg = model.config, S = cfg.imageSize, plane = S * S, C = cfg.inChannels
        let luma: [Float] = C == 3 ? [0.299, 0.587, 0.114] : [Float](repeating: 1 / Float(C), count: C)
        let mark = model.arenas.grads.mark()
        defer { model.arenas.grads.release(to: mark) }
        let image = model.arenas.grads.take(plane), map = model.arenas.grads.take(plane)
        let dMap = model.arenas.grads.take(plane), dImage = model.arenas.grads.take(plane)
        let soft = c.target == .image ? model.arenas.grads.take(plane) : nil
        var total = 0.0
        let scale = lossScale * Float(c.weight) / Float(selected.count)
        for i in selected {
            let ac = Float(schedule.alphasCumprod[b.t[i]])
            let a = ac.squareRoot(), s = (1 - ac).squareRoot()
            // d x0 / d prediction: -s / a (epsilon) or -s (v).
            let dx0 = self.prediction == .v ? -s : -s / a
            let base = i * C * plane
            // (C, S, S) in [-1, 1], element j given by x0(j) -> the (S, S) luma image on the 0...255 scale.
            func lumaImage(into out: UnsafeMutablePointer<Float>, _ x0: (Int) -> Float) {
                for k in 0..<plane {
                    var v: Float = 0
                    for ch in 0..<C { v += luma[ch] * (x0(base + ch * plane + k) + 1) * 127.5 }
                    out[k] = v
                }
            }
            lumaImage(into: image) { j in
                let xt = b.xT[j], p = output[j]
                return self.prediction == .v ? a * xt - s * p : (xt - s * p) / a
            }
            c.extractor.forward(image, height: S, width: S, into: map)
            var target = UnsafePointer(b.hint + i * cfg.hintChannels * plane)
            if let soft {
                // The clean image on the same scale, through the same extractor (probabilities for cross-entropy).
                lumaImage(into: dImage) { b.x0[$0] }
                c.extractor.forward(dImage, height: S, width: S, into: soft)
                if c.extractor.usesCrossEntropy { for k in 0..<plane { soft[k] = 1 / (1 + exp(-soft[k])) } }
                target = UnsafePointer(soft)
            }
            total += c.extractor.loss(map, hint: target, count: plane, dMap: dMap)
            dImage.update(repeating: 0, count: plane)
            c.extractor.backward(image, height: S, width: S, dOut: dMap, dImage: dImage)
            for ch in 0..<C {
                let f = scale * dx0 * luma[ch] * 127.5
                for k in 0..<plane { dPrediction[base + ch * plane + k] += f * dImage[k] }
            }
        }
        return c.weight * total / Double(selected.count)
    }

    /// What the network learns to predict: eps itself, or v (in the arena) from x0, eps and ac_t in float32.
    func target(_ b: TrainingBatch, perSample per: Int, arenas: StepArenas) -> UnsafePointer<Float> {
        guard prediction == .v else { return UnsafePointer(b.eps) }
        let v = arenas.acts.take(b.count * per)
        for (i, step) in b.t.enumerated() {
            let ac = Float(schedule.alphasCumprod[step])
            let a = ac.squareRoot(), s = (1 - ac).squareRoot()
            for j in 0..<per { v[i * per + j] = a * b.eps[i * per + j] - s * b.x0[i * per + j] }
        }
        return UnsafePointer(v)
    }
}
