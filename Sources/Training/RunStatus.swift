// OUT/status.json: where a run stands, for people and batch scripts alike. Rank 0 writes it atomically when the
// run starts ("running"), when it stops on request with a checkpoint ("stopped"), when it reaches its last step
// ("complete": only then are the final weights written), and on an error it can report ("failed"). A scheduler
// script requeues a job only when the state is "stopped".
import Foundation

public struct RunStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case running, stopped, complete, failed }
    public static let fileName = "status.json"

    public var state: State
    public var step: Int
    public var totalSteps: Int
    /// The checkpoint a stopped run resumes from.
    public var checkpoint: String?
    /// Training time over every pass of the run (resumes included).
    public var trainSeconds: Double
    public var message: String?
    public var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case state, step, checkpoint, message
        case totalSteps = "total_steps", trainSeconds = "train_seconds", updatedAt = "updated_at"
    }

    public init(state: State, step: Int, totalSteps: Int, checkpoint: String? = nil, trainSeconds: Double,
                message: String? = nil) {
        self.state = state; self.step = step; self.totalSteps = totalSteps; self.checkpoint = checkpoint
        self.trainSeconds = trainSeconds; self.message = message
        updatedAt = ISO8601DateFormatter().string(from: Date())
    }

    /// Writes OUT/status.json atomically.
    public func write(to out: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(Array(try encoder.encode(self)) + [UInt8(ascii: "\n")],
                             to: out.appendingPathComponent(Self.fileName))
    }

    public static func read(from out: URL) -> RunStatus? {
        guard let data = FileManager.default.contents(atPath: out.appendingPathComponent(fileName).path) else { return nil }
        return try? JSONDecoder().decode(RunStatus.self, from: data)
    }
}
