// Rank-0 output of a run: the progress bar on a terminal (plain periodic lines otherwise) and the JSONL metrics
// log. Other ranks print only warnings and errors.
import Foundation

public final class RunLog: @unchecked Sendable {
    // @unchecked: used from the training thread only.
    public let rank: Int
    private let metrics: FileHandle?
    private let isTerminal: Bool
    private var lastBarLength = 0

    public init(rank: Int, metricsURL: URL?, append: Bool) throws {
        self.rank = rank
        // CONTROLNET_PROGRESS=bar|lines overrides the guess (mpirun gives ranks a pseudo-terminal even when its
        // own output goes to a file).
        let env = ProcessInfo.processInfo.environment
        switch env["CONTROLNET_PROGRESS"] {
        case "bar": isTerminal = true
        case "lines": isTerminal = false
        default: isTerminal = isatty(STDOUT_FILENO) != 0 && env["TERM"] != "dumb" && env["CI"] == nil
        }
        if rank == 0, let url = metricsURL {
            let fm = FileManager.default
            if !append || !fm.fileExists(atPath: url.path) { _ = fm.createFile(atPath: url.path, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: url.path) else {
                throw OptionsError(option: "--out", message: "cannot write \(url.path); check the directory's permissions")
            }
            h.seekToEndOfFile()
            metrics = h
        } else {
            metrics = nil
        }
    }

    /// A line for the user (rank 0 only).
    public func info(_ message: String) {
        guard rank == 0 else { return }
        clearBar()
        print(message)
        fflush(nil)
    }

    /// Something is wrong: every rank prints it, tagged with the rank.
    public func warn(_ message: String) {
        clearBar()
        FileHandle.standardError.write(Data("[rank \(rank)] warning: \(message)\n".utf8))
    }

    public func metric(_ record: [String: Any]) {
        guard let metrics else { return }
        if let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) {
            metrics.write(data + Data("\n".utf8))
        }
    }

    /// Progress: a redrawn bar on a terminal; otherwise a plain line (call it only every log interval then).
    public func progress(step: Int, total: Int, loss: Double, samplesPerSecond: Double, eta: Double, force: Bool) {
        guard rank == 0 else { return }
        let text = String(format: "step %d/%d  loss %.4f  %.1f samples/s  ETA %@", step, total, loss,
                          samplesPerSecond, Self.duration(eta))
        if isTerminal {
            let width = 30, filled = total > 0 ? min(width, width * step / total) : 0
            let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
            let line = bar + text
            print("\r" + line + String(repeating: " ", count: max(0, lastBarLength - line.count)), terminator: "")
            lastBarLength = line.count
            if step == total { print(""); lastBarLength = 0 }
            fflush(nil)
        } else if force {
            print(text)
            fflush(nil)
        }
    }

    private func clearBar() {
        if isTerminal && lastBarLength > 0 { print(""); lastBarLength = 0 }
    }

    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    deinit { try? metrics?.close() }
}
