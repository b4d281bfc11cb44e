// What one training step reads: a rank's micro-batch (TrainingBatch) and where micro-batches come from
// (BatchSource). DatasetBatches draws them from a dataset: images and hints of the rank's shard of the global
// batch, with timesteps, noise and label dropout from counter-based streams keyed by (seed, step, micro-step,
// global slot), so any world size and --simulate-ranks see exactly the same inputs for the same global slot.
import Foundation
import Datasets
import Model
import Randomness

/// One micro-batch of training inputs on this rank. All buffers are (N, C, S, S) flat, owned by the source.
public struct TrainingBatch {
    public var x0: UnsafeMutablePointer<Float>      // (N, in, S, S) clean images in [-1, 1]
    public var eps: UnsafeMutablePointer<Float>     // (N, in, S, S) the noise to predict
    public var xT: UnsafeMutablePointer<Float>      // (N, in, S, S) scratch: the objective writes q_sample here
    public var hint: UnsafeMutablePointer<Float>    // (N, hint, S, S) in [0, 1] (unused by base training)
    public var t: [Int]                             // (N)
    public var labels: [Int]?                       // (N) or nil

    public init(x0: UnsafeMutablePointer<Float>, eps: UnsafeMutablePointer<Float>, xT: UnsafeMutablePointer<Float>,
                hint: UnsafeMutablePointer<Float>, t: [Int], labels: [Int]?) {
        self.x0 = x0; self.eps = eps; self.xT = xT; self.hint = hint; self.t = t; self.labels = labels
    }

    public var count: Int { t.count }
}

/// Supplies the micro-batches of training steps.
public protocol BatchSource: AnyObject {
    /// Global rank `rank`'s samples (of `worldSize` ranks) for micro-step `micro` of optimizer step `step`. A step
    /// asks for micro 0, 1, ... in order and, within a micro-step, for the ranks it plays in increasing order; the
    /// buffers stay valid until the next call.
    func batch(step: Int, micro: Int, rank: Int, worldSize: Int) -> TrainingBatch
}

/// (B, C, S, S) buffers for one rank's micro-batch, reused every micro-step.
public final class BatchBuffers {
    public let x0: FloatBuffer, eps: FloatBuffer, xT: FloatBuffer, hint: FloatBuffer
    public init(config: ModelConfig, batchSize: Int) {
        let pixels = batchSize * config.imageSize * config.imageSize
        x0 = FloatBuffer(count: pixels * config.inChannels); eps = FloatBuffer(count: pixels * config.inChannels)
        xT = FloatBuffer(count: pixels * config.inChannels); hint = FloatBuffer(count: pixels * config.hintChannels)
    }
    public func batch(t: [Int], labels: [Int]?) -> TrainingBatch {
        TrainingBatch(x0: x0.pointer, eps: eps.pointer, xT: xT.pointer, hint: hint.pointer, t: t, labels: labels)
    }
}

/// Micro-batches from a dataset, in the order of a deterministic, resumable sampler.
public final class DatasetBatches: BatchSource {
    public let samples: SampleSource
    let config: ModelConfig
    public let batchSize: Int
    let seed: UInt64
    let promptDropout: Double
    let timesteps: Int
    let buffers: BatchBuffers
    /// Where the data order is: part of the run's state, saved in checkpoints.
    public var sampler: EpochSampler { didSet { prepared = nil } }
    private var prepared: (step: Int, micro: Int, indices: [Int])?

    /// `withHints`: fill the hint buffers (ControlNet training); base training reads none.
    let withHints: Bool
    /// The first `count` samples of each rank's micro-batch draw their timestep from 0...maxT (for the
    /// consistency loss); nil: every timestep from the whole schedule.
    public var lowTimesteps: (count: Int, maxT: Int)?

    public init(samples: SampleSource, withHints: Bool, config: ModelConfig, batchSize: Int, seed: UInt64,
                promptDropout: Double, sampler: EpochSampler, timesteps: Int = 1000) {
        self.samples = samples; self.withHints = withHints; self.config = config; self.batchSize = batchSize
        self.seed = seed; self.promptDropout = promptDropout; self.timesteps = timesteps; self.sampler = sampler
        buffers = BatchBuffers(config: config, batchSize: batchSize)
    }

    public func batch(step: Int, micro: Int, rank: Int, worldSize: Int) -> TrainingBatch {
        if prepared == nil || prepared!.step != step || prepared!.micro != micro {
            prepared = (step, micro, sampler.nextGlobalBatch())
        }
        let shard = EpochSampler.shard(prepared!.indices, rank: rank, worldSize: worldSize)
        return assemble(indices: shard, firstSlot: rank * batchSize, step: step, micro: micro)
    }

    /// indices: this rank's dataset indices; firstSlot: their position in the global batch.
    func assemble(indices: ArraySlice<Int>, firstSlot: Int, step: Int, micro: Int) -> TrainingBatch {
        precondition(indices.count == batchSize)
        let per = config.inChannels * config.imageSize * config.imageSize
        let hintPer = config.hintChannels * config.imageSize * config.imageSize
        var t = [Int](), labels: [Int]? = config.numClasses > 0 ? [] : nil
        for (i, index) in indices.enumerated() {
            let slot = UInt64(firstSlot + i)
            let key = (UInt64(step) << 20) ^ (UInt64(micro) << 52) ^ slot
            samples.image(index, into: buffers.x0.pointer + i * per)
            var tStream = RandomStream(seed, RandomPurpose.timestep.rawValue, key)
            if let low = lowTimesteps, i < low.count {
                t.append(tStream.int(below: low.maxT + 1))
            } else {
                t.append(tStream.int(below: timesteps))
            }
            var noise = RandomStream(seed, RandomPurpose.noise.rawValue, key)
            noise.fillNormal(buffers.eps.pointer + i * per, count: per)
            if withHints {
                samples.hint(index, seed: seed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15),
                             into: buffers.hint.pointer + i * hintPer)
            }
            if labels != nil {
                var drop = RandomStream(seed, RandomPurpose.promptDropout.rawValue, key)
                // -1 (an empty prompt) and data without labels train as "no label" (class num_classes).
                let label = Int(samples.labels?[index] ?? Int32(config.numClasses))
                let inRange = (0..<config.numClasses).contains(label) ? label : config.numClasses
                labels!.append(drop.uniform() < promptDropout ? config.numClasses : inRange)
            }
        }
        return buffers.batch(t: t, labels: labels)
    }
}
