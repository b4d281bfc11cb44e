// The training objective, in one place for every kind of training: noise the clean images (q_sample), run the
// network on them, and take the loss against the target and its gradient, which the network then backpropagates.
// Today: epsilon prediction with a plain MSE over every element of the micro-batch.
import Kernels
import Model

public struct DiffusionObjective: Sendable {
    public let schedule: NoiseSchedule

    public init(schedule: NoiseSchedule = NoiseSchedule()) { self.schedule = schedule }

    /// Forward, loss and backward of one micro-batch: the gradients of (loss * lossScale) are ADDED into
    /// model.grads. Returns the unscaled mean loss.
    public func accumulate(_ model: TrainingModel, _ b: TrainingBatch, lossScale: Float) -> Float {
        let c = model.config
        model.arenas.reset()
        let per = c.inChannels * c.imageSize * c.imageSize, n = b.count * per
        schedule.qSample(x0: b.x0, eps: b.eps, t: b.t, perSample: per, into: b.xT)
        let prediction = model.forward(b)
        let loss = MSELoss.forward(count: n, prediction: prediction, target: b.eps)
        let dPrediction = model.arenas.grads.takeZeroed(n)
        MSELoss.backward(count: n, prediction: prediction, target: b.eps, scale: lossScale, dPrediction: dPrediction)
        model.backward(dPrediction: dPrediction)
        return loss
    }
}
