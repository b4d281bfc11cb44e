// The manifest of a sharded checkpoint: written last, by rank 0, after every shard is durable. A directory without
// a valid manifest is not a checkpoint.
import Foundation
import Model

public struct ShardRecord: Codable, Sendable, Equatable {
    public var file: String
    public var rank: Int
    public var offset: Int          // first trainable element of this slice
    public var count: Int           // elements in the slice (of params, and of m and v each)
    public var bytes: Int           // file size
    public var sha256: String
}

public struct CheckpointManifest: Codable, Sendable {
    public static let formatName = "controlnet-swift-checkpoint/1"
    public var format = formatName
    public var step: Int
    public var epoch: Int
    /// Where the data sampler is (epoch, index into the epoch's permutation) and the rest of the loop state.
    public var state: TrainState
    /// Randomness is counter-based: every draw is a function of (seed, step, slot), so the seed is the whole state.
    public var rng: RNGState
    public var lrSchedule: LRState
    public var mode: TrainingMode
    public var config: String                 // canonical config JSON
    public var options: TrainOptions
    public var baseSHA256: String?            // of the frozen base weights (ControlNet training)
    public var worldSize: Int
    public var trainableCount: Int
    public var shards: [ShardRecord]
    public var createdAt: String

    public struct RNGState: Codable, Sendable, Equatable {
        public var scheme = "counter: xoshiro256** keyed by (seed, purpose, step, micro-step, global slot)"
        public var seed: UInt64
    }
    public struct LRState: Codable, Sendable, Equatable {
        public var kind: LRScheduleKind
        public var base: Double, warmup: Int, total: Int, minFraction: Double
        public var current: Double
        enum CodingKeys: String, CodingKey { case kind, base, warmup, total, current, minFraction = "min_fraction" }
    }

    enum CodingKeys: String, CodingKey {
        case format, step, epoch, state, rng, mode, config, options, shards
        case lrSchedule = "lr_schedule", baseSHA256 = "base_sha256", worldSize = "world_size"
        case trainableCount = "trainable_count", createdAt = "created_at"
    }

    public static let fileName = "manifest.json"

    public static func shardFileName(rank: Int, worldSize: Int) -> String {
        String(format: "shard-%05d-of-%05d.safetensors", rank, worldSize)
    }

    public static func directoryName(step: Int) -> String { String(format: "step-%08d", step) }

    /// Rank r's contiguous slice of `count` elements split over `worldSize` ranks.
    public static func slice(rank: Int, worldSize: Int, count: Int) -> Range<Int> {
        (rank * count / worldSize)..<((rank + 1) * count / worldSize)
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(_ path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "checkpoint \(path): \(message)" }
}
