// The deterministic, resumable, shardable sampler. Epoch e visits a permutation of the dataset that depends only
// on (seed, e); global batches are consecutive slices of it (the last incomplete one is dropped), and rank r of N
// takes the r-th of N equal parts of each global batch, so the ranks' shards are disjoint and cover the batch.
// The position (epoch, index) is all the state there is: saving it and resuming replays the same batches.
import Randomness

public enum SamplerError: Error, CustomStringConvertible, Equatable {
    case invalidPosition(epoch: Int, index: Int, reason: String)

    public var description: String {
        switch self {
        case let .invalidPosition(epoch, index, reason):
            return "sampler position (epoch \(epoch), index \(index)) is invalid: \(reason). The checkpoint's "
                + "sampler state does not fit this dataset/global batch; resume with the same data and batch size."
        }
    }
}

public struct EpochSampler: Codable, Sendable, Equatable {
    public let datasetCount: Int
    public let seed: UInt64
    public let globalBatch: Int
    /// The epoch the next batch comes from.
    public private(set) var epoch: Int
    /// Next unread slot of this epoch's permutation; always a position where a full global batch still fits.
    public private(set) var index: Int
    /// The permutation of `cachedEpoch`, kept so that each batch does not reshuffle (not part of the state).
    private var cachedPermutation: [Int] = []
    private var cachedEpoch = -1

    private enum CodingKeys: String, CodingKey { case datasetCount, seed, globalBatch, epoch, index }

    public init(datasetCount: Int, seed: UInt64, globalBatch: Int) {
        precondition(globalBatch > 0, "globalBatch must be positive")
        precondition(datasetCount >= globalBatch, "the dataset (\(datasetCount)) is smaller than one global batch (\(globalBatch))")
        self.datasetCount = datasetCount
        self.seed = seed
        self.globalBatch = globalBatch
        epoch = 0
        index = 0
    }

    /// Resumes at a saved position (validated: it must be a place where a full global batch fits).
    public init(datasetCount: Int, seed: UInt64, globalBatch: Int, epoch: Int, index: Int) throws {
        self.init(datasetCount: datasetCount, seed: seed, globalBatch: globalBatch)
        try EpochSampler.validate(datasetCount: datasetCount, globalBatch: globalBatch, epoch: epoch, index: index)
        self.epoch = epoch
        self.index = index
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let count = try c.decode(Int.self, forKey: .datasetCount), batch = try c.decode(Int.self, forKey: .globalBatch)
        let epoch = try c.decode(Int.self, forKey: .epoch), index = try c.decode(Int.self, forKey: .index)
        guard batch > 0 && count >= batch else {
            throw SamplerError.invalidPosition(epoch: epoch, index: index,
                                               reason: "global batch \(batch) does not fit dataset size \(count)")
        }
        try self.init(datasetCount: count, seed: c.decode(UInt64.self, forKey: .seed), globalBatch: batch,
                      epoch: epoch, index: index)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(datasetCount, forKey: .datasetCount)
        try c.encode(seed, forKey: .seed)
        try c.encode(globalBatch, forKey: .globalBatch)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(index, forKey: .index)
    }

    public static func == (a: EpochSampler, b: EpochSampler) -> Bool {
        a.datasetCount == b.datasetCount && a.seed == b.seed && a.globalBatch == b.globalBatch
            && a.epoch == b.epoch && a.index == b.index
    }

    private static func validate(datasetCount: Int, globalBatch: Int, epoch: Int, index: Int) throws {
        if epoch < 0 { throw SamplerError.invalidPosition(epoch: epoch, index: index, reason: "negative epoch") }
        if index < 0 || index + globalBatch > datasetCount {
            throw SamplerError.invalidPosition(epoch: epoch, index: index, reason:
                "index must be in 0...\(datasetCount - globalBatch) for \(datasetCount) samples, global batch \(globalBatch)")
        }
    }

    public var batchesPerEpoch: Int { datasetCount / globalBatch }

    /// Global batches taken so far (across epochs), when every resume kept the batch boundaries.
    public var step: Int { epoch * batchesPerEpoch + index / globalBatch }

    /// The shuffled order of epoch `epoch`: Fisher-Yates driven by SplitMix64 seeded from (seed, epoch).
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0 ..< count)
        var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(bitPattern: Int64(epoch)), 0x5A3B_1E00))
        var k = count - 1
        while k > 0 {
            let j = Int(rng.next(below: UInt64(k + 1)))
            order.swapAt(k, j)
            k -= 1
        }
        return order
    }

    /// The next global batch (globalBatch dataset indices), advancing the position (rolling to the next epoch).
    /// Rank r of N takes the slice [r*B, (r+1)*B) of it (B = globalBatch / N); helper: `shard`.
    public mutating func nextGlobalBatch() -> [Int] {
        if cachedEpoch != epoch {
            cachedPermutation = EpochSampler.permutation(count: datasetCount, seed: seed, epoch: epoch)
            cachedEpoch = epoch
        }
        let batch = Array(cachedPermutation[index ..< index + globalBatch])
        index += globalBatch
        if index + globalBatch > datasetCount {
            epoch += 1
            index = 0
        }
        return batch
    }

    /// Rank `rank`'s part of a global batch: [rank*B, (rank+1)*B) with B = global.count / worldSize.
    public static func shard(_ global: [Int], rank: Int, worldSize: Int) -> ArraySlice<Int> {
        precondition(worldSize > 0 && rank >= 0 && rank < worldSize, "rank \(rank) out of range for world size \(worldSize)")
        precondition(global.count % worldSize == 0,
                     "global batch \(global.count) is not divisible by world size \(worldSize)")
        let b = global.count / worldSize
        return global[rank * b ..< (rank + 1) * b]
    }
}
