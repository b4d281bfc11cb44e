// One optimizer step, the only one there is: the trainer, `bench` and the tests all run this code.
//
// Per step: zero the gradients; for each micro-step and each rank this process plays, forward + loss + backward
// (DiffusionObjective) on that rank's micro-batch; agree across ranks, in one small all-reduce, on the mean loss,
// whether any rank saw a non-finite value, and whether any rank was asked to stop; skip the update together if the
// values were non-finite; otherwise all-reduce (average) the ONE flat gradient buffer, clip its global norm, and
// run AdamW at the scheduled learning rate; then update the EMA of the weights, if kept. With --simulate-ranks N one
// process plays N ranks and averages them.
//
// ZeRO-1 (--zero 1) shards the optimizer across the MPI ranks: the gradients are reduce-scattered, each rank
// clips (by the global norm, one small all-reduce) and updates only its slice of the weights with the AdamW
// moments it alone holds, and the weights are all-gathered. The slices are the checkpoint shards' slices, so a
// checkpoint is written without any gathering and the format does not change.
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
    /// Of the convolutions' and attention's products (Precision.swift); everything the step keeps is fp32.
    public var precision = Precision.fp32
    /// Testing aid: make the gradients non-finite at these steps, on one rank or all (nil).
    public var injectNonfinite: [(step: Int, rank: Int?)] = []
    /// Keep an exponential moving average of the trainable weights with this decay (diffusers' EMAModel
    /// schedule: decay_k = 0 at update 1, else min(D, k / (9 + k))); nil keeps none.
    public var emaDecay: Double?
    /// 1: shard the AdamW moments across the MPI ranks (ZeRO-1); 0: every rank holds them all.
    public var zeroStage = 0

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
    /// A stop request arrived in the middle of the micro-steps on some rank: the step was not taken (no update,
    /// counters unchanged), so the run can stop now instead of after thousands more micro-steps. The caller
    /// rewinds its data source to where the step began.
    public let abandoned: Bool
    public var skipped: Bool { loss == nil }
}

public final class TrainingStep {
    public let model: TrainingModel
    public let objective: DiffusionObjective
    public let comm: any Communicator
    public let settings: StepSettings
    /// AdamW moments: (trainable count) each, or only this rank's slice `optimizerSlice` of it under ZeRO-1.
    public let m: FloatBuffer, v: FloatBuffer
    /// The elements of the trainable arena whose moments this rank holds (all of them without ZeRO).
    public let optimizerSlice: Range<Int>
    /// The EMA of the trainable weights (trainable count), when kept; it starts as a copy of the weights.
    public let ema: FloatBuffer?
    public var counters = StepCounters()

    public init(model: TrainingModel, objective: DiffusionObjective = DiffusionObjective(), comm: any Communicator,
                settings: StepSettings) {
        self.model = model; self.objective = objective; self.comm = comm; self.settings = settings
        model.precision = settings.precision
        let count = model.params.count
        optimizerSlice = settings.zeroStage >= 1 ? Self.slice(rank: comm.rank, worldSize: comm.size, count: count) : 0..<count
        m = FloatBuffer(count: optimizerSlice.count)
        v = FloatBuffer(count: optimizerSlice.count)
        ema = settings.emaDecay == nil ? nil : FloatBuffer(count: count)
        resetEMA()
    }

    /// Rank r's contiguous slice of `count` elements over `worldSize` ranks (the checkpoint shards' slicing).
    public static func slice(rank: Int, worldSize: Int, count: Int) -> Range<Int> {
        (rank * count / worldSize)..<((rank + 1) * count / worldSize)
    }

    /// Makes the EMA a copy of the current weights (at the start, or when a checkpoint without one is resumed).
    public func resetEMA() { ema?.copy(from: model.params) }

    /// Bytes of optimizer state this rank holds (AdamW moments; the EMA is reported apart).
    public var optimizerBytes: Int { 8 * optimizerSlice.count }

    /// Ranks in the job: MPI ranks times the ranks each process plays.
    public var worldSize: Int { comm.size * settings.ranksPerProcess }

    /// Forward, loss and backward of one micro-batch, adding the gradients of loss * lossScale.
    public func accumulate(_ batch: TrainingBatch, lossScale: Float) -> Float {
        objective.accumulate(model, batch, lossScale: lossScale)
    }

    /// Takes optimizer step `counters.step + 1`. `stopRequested` is read before the agreement and between
    /// micro-steps. Throws after `maxConsecutiveSkips` non-finite steps in a row.
    public func run(_ source: BatchSource, stopRequested: () -> Bool = { false }) throws -> StepOutcome {
        let profiler = PhaseProfiler.shared
        let step = counters.step + 1
        comm.markStep(step)  // names the step in the collective watchdog's reports
        let sim = settings.ranksPerProcess, accum = settings.gradAccum
        let grads = model.grads
        profiler.measure(.elementwise) { grads.zero() }
        var lossSum = 0.0, abandon = false
        micros: for micro in 0..<accum {
            for local in 0..<sim {
                if micro * sim + local > 0 && stopRequested() { abandon = true; break micros }
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
        var small = [lossSum / Double(accum * sim), localBad ? 1 : 0, abandon || stopRequested() ? 1 : 0, abandon ? 1 : 0]
        try profiler.measure(.allReduce) { try comm.allReduce(&small, op: .sum) }
        let stop = small[2] > 0
        if small[3] > 0 {
            return StepOutcome(step: step, loss: nil, gradNorm: nil, lr: nil, nonFiniteRanks: 0, stopAgreed: true,
                               abandoned: true)
        }
        counters.step = step
        if small[1] > 0 {
            counters.skippedTotal += 1; counters.consecutiveSkips += 1
            if counters.consecutiveSkips >= settings.maxConsecutiveSkips {
                throw TrainingError("aborting: \(settings.maxConsecutiveSkips) consecutive steps had a non-finite loss or gradient (last at step \(step)). The inputs were checked finite when loaded, so the training diverged: lower --lr, keep --max-grad-norm, or check the data for extreme values")
            }
            return StepOutcome(step: step, loss: nil, gradNorm: nil, lr: nil, nonFiniteRanks: Int(small[1]),
                               stopAgreed: stop, abandoned: false)
        }
        counters.consecutiveSkips = 0
        let sharded = settings.zeroStage >= 1 && comm.size > 1
        let count = grads.count, mine = optimizerSlice
        let slice = { (r: Int) in Self.slice(rank: r, worldSize: self.comm.size, count: count) }
        try profiler.measure(.allReduce) {
            if sharded { try comm.reduceScatterAverage(grads.pointer, count: count, slice: slice) }
            else { try comm.allReduceAverage(grads.pointer, count: count) }
        }
        let g = grads.pointer + mine.lowerBound, p = model.params.pointer + mine.lowerBound
        var sumOfSquares = profiler.measure(.optimizer) { Elementwise.sumOfSquares(count: mine.count, g) }
        if sharded { sumOfSquares = try profiler.measure(.allReduce) { try comm.allReduce(sumOfSquares, op: .sum) } }
        let norm = sumOfSquares.squareRoot()
        let lr = settings.schedule.lr(at: step)
        profiler.measure(.optimizer) {
            if let maxNorm = settings.maxGradNorm, norm > maxNorm {
                Elementwise.scale(count: mine.count, alpha: Float(maxNorm / (norm + 1e-6)), x: g)
            }
            counters.adamStep += 1
            AdamW.step(count: mine.count, params: p, grads: g, m: m.pointer, v: v.pointer, lr: Float(lr),
                       step: counters.adamStep, config: settings.adam)
        }
        if sharded { try profiler.measure(.allReduce) { try comm.allGather(model.params.pointer, count: count, slice: slice) } }
        profiler.measure(.optimizer) { updateEMA() }
        return StepOutcome(step: step, loss: small[0] / Double(comm.size), gradNorm: norm, lr: lr,
                           nonFiniteRanks: 0, stopAgreed: stop, abandoned: false)
    }
}

extension TrainingStep {
    /// ema -= (1 - decay_k) (ema - params), decay_k = 0 at AdamW update 1, else min(D, k / (9 + k)).
    func updateEMA() {
        guard let ema, let d = settings.emaDecay else { return }
        let k = Double(counters.adamStep)
        let decay = counters.adamStep <= 1 ? 0 : min(d, k / (9 + k))
        let rate = Float(1 - decay)
        let e = ema.pointer, p = model.params.pointer
        for i in 0..<ema.count { e[i] -= rate * (e[i] - p[i]) }
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
