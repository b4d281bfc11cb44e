// One optimizer step, the only one there is: the trainer, `bench` and the tests all run this code.
//
// Per step: zero the gradients; for each micro-step and each rank this process plays, forward + loss + backward
// (DiffusionObjective) on that rank's micro-batch; agree across ranks, in one small all-reduce, on the mean loss,
// whether any rank saw a non-finite value, and whether any rank was asked to stop; skip the update together if the
// values were non-finite; otherwise all-reduce (average) the ONE flat gradient buffer, clip its global norm, and
// run AdamW at the scheduled learning rate. With --simulate-ranks N one process plays N ranks and averages them.
// Phases are marked for the profiler (`bench` switches it on; off, a mark costs a load and a branch).
import Distributed
import Kernels
import Model

/// Where the optimizer is: everything besides weights and moments that a step changes.
public struct StepCounters: Codable, Sendable, Equatable {
    public var step = 0              // optimizer steps taken (skipped ones included)
    public var adamStep = 0          // AdamW's step count (skipped steps excluded, as PyTorch's GradScaler does)
    public var skippedTotal = 0
    public var consecutiveSkips = 0
    public init() {}
}

public struct StepSettings: Sendable {
    public var gradAccum = 1
    /// Ranks this process plays (--simulate-ranks); the world is comm.size times this.
    public var ranksPerProcess = 1
    /// Clip the global gradient norm to this after the all-reduce; nil disables.
    public var maxGradNorm: Double? = 1.0
    public var schedule: LRSchedule
    public var adam = AdamWConfig()
    /// Consecutive non-finite steps that end the run.
    public var maxConsecutiveSkips = 10
    /// Testing aid: make the gradients non-finite at these steps, on one rank or all (nil).
    public var injectNonfinite: [(step: Int, rank: Int?)] = []

    public init(schedule: LRSchedule) { self.schedule = schedule }
}

public struct StepOutcome: Sendable {
    public let step: Int
    /// Mean loss over ranks and micro-steps; nil when the step was skipped.
    public let loss: Double?
    /// Global gradient norm before clipping, and the learning rate used; nil when skipped.
    public let gradNorm: Double?, lr: Double?
    /// Ranks that saw a non-finite loss or gradient (0 unless skipped).
    public let nonFiniteRanks: Int
    /// Some rank was asked to stop: every rank learns it in the same step.
    public let stopAgreed: Bool
    public var skipped: Bool { loss == nil }
}

public final class TrainingStep {
    public let model: TrainingModel
    public let objective: DiffusionObjective
    public let comm: any Communicator
    public let settings: StepSettings
    /// AdamW moments, (trainable count) each.
    public let m: FloatBuffer, v: FloatBuffer
    public var counters = StepCounters()

    public init(model: TrainingModel, objective: DiffusionObjective = DiffusionObjective(), comm: any Communicator,
                settings: StepSettings) {
        self.model = model; self.objective = objective; self.comm = comm; self.settings = settings
        m = FloatBuffer(count: model.params.count)
        v = FloatBuffer(count: model.params.count)
    }

    /// Ranks in the job: MPI ranks times the ranks each process plays.
    public var worldSize: Int { comm.size * settings.ranksPerProcess }

    /// Forward, loss and backward of one micro-batch, adding the gradients of loss * lossScale.
    public func accumulate(_ batch: TrainingBatch, lossScale: Float) -> Float {
        objective.accumulate(model, batch, lossScale: lossScale)
    }

    /// Takes optimizer step `counters.step + 1`. Throws after `maxConsecutiveSkips` non-finite steps in a row.
    public func run(_ source: BatchSource, stopRequested: Bool = false) throws -> StepOutcome {
        let profiler = PhaseProfiler.shared
        let step = counters.step + 1
        comm.markStep(step)  // names the step in the collective watchdog's reports
        let sim = settings.ranksPerProcess, accum = settings.gradAccum
        let grads = model.grads
        profiler.measure(.elementwise) { grads.zero() }
        var lossSum = 0.0
        for micro in 0..<accum {
            for local in 0..<sim {
                let rank = comm.rank * sim + local
                let batch = source.batch(step: step, micro: micro, rank: rank, worldSize: worldSize)
                lossSum += Double(accumulate(batch, lossScale: 1 / Float(accum * sim)))
            }
        }
        for (s, r) in settings.injectNonfinite where s == step && (r == nil || r == comm.rank) {
            grads.pointer[0] = .nan
        }
        let localBad = profiler.measure(.elementwise) {
            !lossSum.isFinite || !Elementwise.allFinite(count: grads.count, grads.pointer)
        }
        var small = [lossSum / Double(accum * sim), localBad ? 1 : 0, stopRequested ? 1 : 0]
        try profiler.measure(.allReduce) { try comm.allReduce(&small, op: .sum) }
        counters.step = step
        let stop = small[2] > 0
        if small[1] > 0 {
            counters.skippedTotal += 1; counters.consecutiveSkips += 1
            if counters.consecutiveSkips >= settings.maxConsecutiveSkips {
                throw TrainingError("aborting: \(settings.maxConsecutiveSkips) consecutive steps had a non-finite loss or gradient (last at step \(step)); lower --lr, set --max-grad-norm, or check the data")
            }
            return StepOutcome(step: step, loss: nil, gradNorm: nil, lr: nil, nonFiniteRanks: Int(small[1]),
                               stopAgreed: stop)
        }
        counters.consecutiveSkips = 0
        try profiler.measure(.allReduce) { try comm.allReduceAverage(grads.pointer, count: grads.count) }
        return profiler.measure(.optimizer) {
            let norm = Elementwise.sumOfSquares(count: grads.count, grads.pointer).squareRoot()
            if let maxNorm = settings.maxGradNorm, norm > maxNorm {
                Elementwise.scale(count: grads.count, alpha: Float(maxNorm / (norm + 1e-6)), x: grads.pointer)
            }
            counters.adamStep += 1
            let lr = settings.schedule.lr(at: step)
            AdamW.step(count: grads.count, params: model.params.pointer, grads: grads.pointer, m: m.pointer,
                       v: v.pointer, lr: Float(lr), step: counters.adamStep, config: settings.adam)
            return StepOutcome(step: step, loss: small[0] / Double(comm.size), gradNorm: norm, lr: lr,
                               nonFiniteRanks: 0, stopAgreed: stop)
        }
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
