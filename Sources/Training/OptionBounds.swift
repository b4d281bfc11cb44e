// Bounds on the numeric options of the tool commands (bench, bench-sgemm, comm-check, diff-weights): every count
// and duration has a finite, stated range, so no value can make a command allocate without end, loop for ever or
// wait on a NaN. The checks throw OptionsError naming the option, the range and the value given.
import Foundation

public enum OptionBounds {
    /// Refuses `value` outside `range`, naming `option`.
    public static func count(_ option: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw OptionsError(option: option, message: "must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    /// Refuses a non-finite `value` or one outside `range`, naming `option`. NaN fails every comparison, so it
    /// is tested first and named as such rather than slipping through a `>=` check.
    public static func number(_ option: String, _ value: Double, _ range: ClosedRange<Double>) throws {
        guard value.isFinite else {
            throw OptionsError(option: option, message: "must be a finite number, got \(value)")
        }
        guard range.contains(value) else {
            throw OptionsError(option: option, message: "must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    /// Bytes in GB for messages.
    public static func gigabytes(_ bytes: Double) -> String { String(format: "%.2f GB", bytes / 1e9) }
    /// "about X GB (N bytes)": a Double, because a count near Int.max makes a byte count no Int holds.
    public static func bytes(_ bytes: Double) -> String { String(format: "about %@ (%.0f bytes)", gigabytes(bytes), bytes) }

    // The ranges: far above any real use, low enough that a typo cannot run for days.

    /// bench: timed steps, untimed warmup steps, threads, samples per step (also checked against memory).
    public static let benchSteps = 1...100_000, benchWarmup = 0...100_000, threads = 1...1024
    public static let batchSize = 1...65_536
    /// bench --mode sample: samples per timed run and timed runs.
    public static let benchSampleCount = 1...1_000_000, benchRepeats = 1...10_000
    /// bench-sgemm: timed repetitions of each GEMM, and the batch of the conv shapes.
    public static let sgemmRepeats = 1...10_000, sgemmBatch = 1...4096
    /// comm-check: floats in the buffer (2^28 floats = 1 GiB per buffer), timed all-reduces.
    public static let commCount = 1...(1 << 28), commRepeats = 1...1_000_000
    /// comm-check: any duration in seconds (a day).
    public static let seconds = 0.0...86_400.0
}
