// Where a run is: everything besides the weights and optimizer moments needed to continue exactly, as the
// checkpoint manifest records it (flat keys).
import Foundation
import Datasets

public struct TrainState: Codable, Sendable, Equatable {
    public var counters: StepCounters
    public var sampler: EpochSampler
    /// Seconds spent training over every pass of the run (so a resumed run reports its whole time).
    public var trainSeconds: Double = 0
    public var step: Int { counters.step }
    public var adamStep: Int { counters.adamStep }
    public var skippedTotal: Int { counters.skippedTotal }

    public init(counters: StepCounters = StepCounters(), sampler: EpochSampler, trainSeconds: Double = 0) {
        self.counters = counters; self.sampler = sampler; self.trainSeconds = trainSeconds
    }

    enum CodingKeys: String, CodingKey {
        case step, sampler
        case adamStep = "adam_step", skippedTotal = "skipped_total", consecutiveSkips = "consecutive_skips"
        case trainSeconds = "train_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        counters = StepCounters()
        counters.step = try c.decode(Int.self, forKey: .step)
        counters.adamStep = try c.decode(Int.self, forKey: .adamStep)
        counters.skippedTotal = try c.decode(Int.self, forKey: .skippedTotal)
        counters.consecutiveSkips = try c.decode(Int.self, forKey: .consecutiveSkips)
        sampler = try c.decode(EpochSampler.self, forKey: .sampler)
        trainSeconds = try c.decodeIfPresent(Double.self, forKey: .trainSeconds) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(counters.step, forKey: .step)
        try c.encode(counters.adamStep, forKey: .adamStep)
        try c.encode(counters.skippedTotal, forKey: .skippedTotal)
        try c.encode(counters.consecutiveSkips, forKey: .consecutiveSkips)
        try c.encode(sampler, forKey: .sampler)
        try c.encode(trainSeconds, forKey: .trainSeconds)
    }
}

public enum Checksum {
    /// FNV-1a over the bytes of a Float buffer, 8 bytes at a time (fast enough for replica checks).
    public static func fnv1a(_ buffer: UnsafeMutableBufferPointer<Float>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let raw = UnsafeRawBufferPointer(buffer)
        let words = raw.count / 8
        for i in 0..<words {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01b3
        }
        for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3 }
        return h
    }
}
