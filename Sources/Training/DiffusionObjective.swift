// The training objective, in one place for every kind of training: noise the clean images (q_sample), run the
// network on them, and take the loss against the target and its gradient, which the network then backpropagates.
// The target is the noise (epsilon prediction) or v = sqrt(ac) eps - sqrt(1 - ac) x0 (v prediction); the loss is
// the MSE over every element, or with --snr-gamma G the batch mean of min-SNR-G weights times each sample's MSE:
// w = min(SNR, G) / SNR for epsilon, min(SNR, G) / (SNR + 1) for v, SNR = ac / (1 - ac) (Hang et al. 2023;
// diffusers' train scripts).
import Kernels
import Model

public struct DiffusionObjective: Sendable {
    public let schedule: NoiseSchedule
    public var prediction: PredictionType
    /// min-SNR-gamma, or nil for the plain MSE.
    public var snrGamma: Double?

    public init(schedule: NoiseSchedule = NoiseSchedule(), prediction: PredictionType = .epsilon, snrGamma: Double? = nil) {
        self.schedule = schedule; self.prediction = prediction; self.snrGamma = snrGamma
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
        guard let w = weights(b.t) else {
            let loss = MSELoss.forward(count: n, prediction: prediction, target: target)
            MSELoss.backward(count: n, prediction: prediction, target: target, scale: lossScale, dPrediction: dPrediction)
            model.backward(dPrediction: dPrediction)
            return loss
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
        return Float(loss / Double(b.count))
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
