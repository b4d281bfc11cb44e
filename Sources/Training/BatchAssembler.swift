// Builds one rank's micro-batch: images and hints of its shard of the global batch, and the timesteps, noise and
// label dropout drawn from counter-based streams keyed by (seed, step, micro-step, global slot). Any world size,
// and --simulate-ranks, therefore sees exactly the same inputs for the same global slot.
import Foundation
import Datasets
import Model

final class BatchAssembler {
    let dataset: ImageDataset
    let hints: HintProvider?
    let config: ModelConfig
    let batchSize: Int
    let seed: UInt64
    let promptDropout: Double
    let timesteps: Int
    // (B, C, S, S) buffers, reused every micro-step.
    let x0: FloatBuffer, eps: FloatBuffer, xT: FloatBuffer, hint: FloatBuffer

    init(dataset: ImageDataset, hints: HintProvider?, config: ModelConfig, batchSize: Int, seed: UInt64,
         promptDropout: Double, timesteps: Int = 1000) {
        self.dataset = dataset; self.hints = hints; self.config = config; self.batchSize = batchSize
        self.seed = seed; self.promptDropout = promptDropout; self.timesteps = timesteps
        let per = config.inChannels * config.imageSize * config.imageSize
        x0 = FloatBuffer(count: batchSize * per); eps = FloatBuffer(count: batchSize * per)
        xT = FloatBuffer(count: batchSize * per)
        hint = FloatBuffer(count: batchSize * config.hintChannels * config.imageSize * config.imageSize)
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
            dataset.image(index, into: x0.pointer + i * per)
            var tStream = RandomStream(seed, RandomPurpose.timestep.rawValue, key)
            t.append(tStream.int(below: timesteps))
            var noise = RandomStream(seed, RandomPurpose.noise.rawValue, key)
            noise.fillNormal(eps.pointer + i * per, count: per)
            if let hints {
                hints.hint(index, seed: seed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15), into: hint.pointer + i * hintPer)
            }
            if labels != nil {
                var drop = RandomStream(seed, RandomPurpose.promptDropout.rawValue, key)
                let label = Int(dataset.labels?[index] ?? Int32(config.numClasses))
                let inRange = (0..<config.numClasses).contains(label) ? label : config.numClasses
                labels!.append(drop.uniform() < promptDropout ? config.numClasses : inRange)
            }
        }
        return TrainingBatch(x0: x0.pointer, eps: eps.pointer, xT: xT.pointer, hint: hint.pointer, t: t, labels: labels)
    }
}
