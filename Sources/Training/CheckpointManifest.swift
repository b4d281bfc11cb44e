// The manifest of a sharded checkpoint: written last, by rank 0, after every shard is durable. A directory without
// a valid manifest is not a checkpoint. The manifest protects itself (format 2): `manifest_sha256` is the SHA-256
// of its own canonical JSON with that field empty, so an edited manifest (a step changed by hand) is refused; its
// fields must also agree with the shards' own metadata and with each other.
import Crypto
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

/// What the run trained on, so a resume on other data is refused: the dataset as named and its content.
public struct DataFingerprint: Codable, Sendable, Equatable {
    public var source: String
    public var resize: Bool
    /// The hint kind (ControlNet training), or nil.
    public var hint: String?
    public var count: Int, channels: Int, height: Int, width: Int
    /// SHA-256 of the training split's pixels and labels, as trained on (after any resize), or of a paired
    /// set's files and decode settings.
    public var contentSHA256: String
    /// The prompt vocabulary the labels index (paired data), or nil.
    public var prompts: [String]?
    enum CodingKeys: String, CodingKey {
        case source, resize, hint, count, channels, height, width, prompts, contentSHA256 = "content_sha256"
    }
}

public struct CheckpointManifest: Codable, Sendable {
    public static let formatName = "controlnet-swift-checkpoint/2"
    /// Read too: format 1 has no self-checksum, run id or data fingerprint (its shards are still verified).
    public static let legacyFormatName = "controlnet-swift-checkpoint/1"
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
    /// The run this checkpoint belongs to (kept across resumes): retention deletes only its own run's checkpoints.
    public var runID: String?
    public var data: DataFingerprint?
    /// SHA-256 of this manifest's canonical JSON with this field set to "" (format 2).
    public var manifestSHA256: String?

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
        case format, step, epoch, state, rng, mode, config, options, shards, data
        case lrSchedule = "lr_schedule", baseSHA256 = "base_sha256", worldSize = "world_size"
        case trainableCount = "trainable_count", createdAt = "created_at", runID = "run_id"
        case manifestSHA256 = "manifest_sha256"
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

    /// The canonical bytes: sorted keys, pretty-printed (as written), with `manifest_sha256` empty.
    func canonicalBytes() throws -> Data {
        var copy = self
        copy.manifestSHA256 = ""
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(copy)
    }

    /// The manifest as written: its checksum filled in.
    func sealed() throws -> Data {
        var copy = self
        copy.manifestSHA256 = SHA256.hash(data: try canonicalBytes()).map { String(format: "%02x", $0) }.joined()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(copy)
    }

    /// The checksum of the bytes as read, with the stored checksum blanked: the bytes written, whatever this build's
    /// types would re-encode (a newer build may know options an older one did not write), or nil when the field is
    /// not there exactly once.
    static func rawChecksum(_ raw: Data, stored: String) -> String? {
        let field = Data("\"manifest_sha256\" : \"\(stored)\"".utf8)
        guard let r = raw.range(of: field), raw.range(of: field, in: r.upperBound..<raw.endIndex) == nil else { return nil }
        var blanked = raw
        blanked.replaceSubrange(r, with: Data("\"manifest_sha256\" : \"\"".utf8))
        return SHA256.hash(data: blanked).map { String(format: "%02x", $0) }.joined()
    }

    /// Checks the self-checksum against `raw`, the file's bytes, and that the fields agree with each other; `path`
    /// names the file in errors.
    func verify(path: String, raw: Data) throws {
        switch format {
        case Self.formatName:
            guard let stored = manifestSHA256 else { throw CheckpointError(path, "has no manifest_sha256 (format 2 requires it)") }
            let actual = Self.rawChecksum(raw, stored: stored) ?? "(the field appears more than once or not as written)"
            guard stored == actual else {
                throw CheckpointError(path, "was modified after it was written (manifest_sha256 \(stored) does not match its content, \(actual)); restore it or resume from another checkpoint")
            }
            // Format 2 always records what the run trained on; without it a resume on other data would pass.
            guard data != nil else {
                throw CheckpointError(path, "has no data fingerprint (format 2 requires it); restore the manifest or resume from another checkpoint")
            }
        case Self.legacyFormatName:
            break
        default:
            throw CheckpointError(path, "format '\(format)', expected '\(Self.formatName)'")
        }
        guard state.step == step, step >= 1 else {
            throw CheckpointError(path, "says step \(step) but its state says step \(state.step)")
        }
        guard state.counters.adamStep + state.counters.skippedTotal == step, state.counters.adamStep >= 0 else {
            throw CheckpointError(path, "its AdamW step (\(state.counters.adamStep)) and skipped steps (\(state.counters.skippedTotal)) do not add up to step \(step)")
        }
        // A checksum only proves who wrote the manifest, not that it is sane: everything that sizes an allocation
        // or an index is checked against everything else before the reader allocates anything.
        let c = state.counters
        guard c.skippedTotal >= 0, c.consecutiveSkips >= 0, c.consecutiveSkips <= c.skippedTotal else {
            throw CheckpointError(path, "has impossible skip counts (skipped_total \(c.skippedTotal), consecutive_skips \(c.consecutiveSkips)); they must be >= 0, consecutive at most total")
        }
        let sampler = state.sampler
        guard (0...step).contains(sampler.epoch), epoch >= 0, epoch <= step else {
            throw CheckpointError(path, "puts the sampler at epoch \(sampler.epoch) (manifest epoch \(epoch)) after \(step) steps; a step takes at least one batch, so the epoch is at most the step")
        }
        guard (0...sampler.datasetCount).contains(sampler.index) else {
            throw CheckpointError(path, "puts the sampler at index \(sampler.index) of a \(sampler.datasetCount)-sample epoch")
        }
        guard worldSize >= 1, shards.count == worldSize, trainableCount >= 0 else {
            throw CheckpointError(path, "lists \(shards.count) shards for world size \(worldSize)")
        }
        var ranks = Set<Int>(), sum = 0
        for shard in shards {
            guard (0..<worldSize).contains(shard.rank) else {
                throw CheckpointError(path, "lists a shard for rank \(shard.rank), outside 0..<\(worldSize) (world_size)")
            }
            guard ranks.insert(shard.rank).inserted else {
                throw CheckpointError(path, "lists rank \(shard.rank)'s shard twice; every rank 0..<\(worldSize) has exactly one")
            }
            // params, m and v: three float32 values per element at least (an EMA adds a fourth).
            guard shard.count >= 0, shard.bytes >= 0, shard.count <= shard.bytes / 12 else {
                throw CheckpointError(path, "says rank \(shard.rank)'s shard holds \(shard.count) elements in \(shard.bytes) bytes; params, m and v need 12 bytes per element")
            }
            sum += shard.count   // no overflow: each count is at most bytes / 12
        }
        guard sum == trainableCount else {
            throw CheckpointError(path, "says trainable_count \(trainableCount) but its shards hold \(sum) elements")
        }
        for shard in shards {
            // Shards live in the checkpoint directory under the one name their rank and world size give.
            guard (0..<worldSize).contains(shard.rank),
                  shard.file == Self.shardFileName(rank: shard.rank, worldSize: worldSize) else {
                throw CheckpointError(path, "names the shard file '\(shard.file)' for rank \(shard.rank); expected \(Self.shardFileName(rank: max(0, shard.rank), worldSize: worldSize))")
            }
            let slice = Self.slice(rank: shard.rank, worldSize: worldSize, count: trainableCount)
            guard shard.offset == slice.lowerBound, shard.count == slice.count else {
                throw CheckpointError(path, "gives rank \(shard.rank) elements \(shard.offset)..<\(shard.offset + shard.count); its slice is \(slice)")
            }
        }
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(_ path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "checkpoint \(path): \(message)" }
}
