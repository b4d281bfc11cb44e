// Rank-0 output of a run: the progress bar on a terminal (plain periodic lines otherwise) and the JSONL metrics
// log. Other ranks print only warnings and errors.
//
// metrics.jsonl stays line-valid whatever happens: each record is one write() of a whole line, a write that fails
// (a full disk) is cut back off the file and ends the run with the reason, and a resumed run first drops a torn
// last line and the records of steps after the checkpoint it continues from (they are replayed).
import Foundation
import Datasets
import Kernels

public struct RunLogError: Error, CustomStringConvertible {
    public let path: String, reason: String
    public var description: String { "\(path): \(reason)" }
}

public final class RunLog: @unchecked Sendable {
    // @unchecked: used from the training thread only.
    public let rank: Int
    private let metricsPath: String?
    private var metricsFD: Int32 = -1
    private let isTerminal: Bool
    private var lastBarLength = 0

    /// `keepStepsThrough`: nil starts metrics.jsonl empty; a step k keeps the records of steps <= k (a resume).
    public init(rank: Int, metricsURL: URL?, keepStepsThrough: Int?) throws {
        self.rank = rank
        // CONTROLNET_PROGRESS=bar|lines overrides the guess (mpirun gives ranks a pseudo-terminal even when its
        // own output goes to a file).
        let env = ProcessInfo.processInfo.environment
        switch env["CONTROLNET_PROGRESS"] {
        case "bar": isTerminal = true
        case "lines": isTerminal = false
        default: isTerminal = isatty(STDOUT_FILENO) != 0 && env["TERM"] != "dumb" && env["CI"] == nil
        }
        metricsPath = rank == 0 ? metricsURL?.path : nil
        guard let path = metricsPath else { return }
        if let k = keepStepsThrough { try Self.keepRecords(at: path, throughStep: k) }
        let flags = O_WRONLY | O_CREAT | O_APPEND | (keepStepsThrough == nil ? O_TRUNC : 0)
        metricsFD = open(path, flags, 0o644)
        guard metricsFD >= 0 else {
            throw OptionsError(option: "--out", message: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Rewrites metrics.jsonl keeping only whole, parseable lines of steps <= `step` (records without a step,
    /// such as stall notes, stay).
    static func keepRecords(at path: String, throughStep step: Int) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var kept = Data()
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
            if let s = object["step"] as? Int, s > step { continue }
            kept.append(contentsOf: line); kept.append(UInt8(ascii: "\n"))
        }
        // The last line of a file cut by a crash has no newline: split() still returns it, and it only survives
        // above if it parsed, i.e. if only its newline was lost.
        do { try FileOutput.write(Array(kept), to: URL(fileURLWithPath: path)) } catch {
            throw RunLogError(path: path, reason: "cannot rewrite the metrics for the resume: \(error)")
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
        Console.error("[rank \(rank)] warning: \(message)\n")
    }

    /// Appends one record (rank 0). Non-finite numbers are written as strings so the line stays JSON.
    public func metric(_ record: [String: Any]) throws {
        guard metricsFD >= 0, let path = metricsPath else { return }
        let clean = record.mapValues { v -> Any in
            if let d = v as? Double, !d.isFinite { return "\(d)" }
            return v
        }
        guard var line = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) else { return }
        line.append(UInt8(ascii: "\n"))
        let before = lseek(metricsFD, 0, SEEK_END)
        var written = line.withUnsafeBytes { write(metricsFD, $0.baseAddress, $0.count) }
        if written >= 0 && written < line.count {
            // A short write: writing the rest either completes the line or fails with the reason (EFBIG, ENOSPC).
            let more = line.withUnsafeBytes { write(metricsFD, $0.baseAddress! + written, $0.count - written) }
            written = more < 0 ? -1 : written + more
        }
        if written != line.count {
            let reason = written < 0 ? FileOutput.reason(errno) : "only \(written) of \(line.count) bytes written (disk full?)"
            if before >= 0 { _ = ftruncate(metricsFD, before) }   // no torn line left behind
            throw RunLogError(path: path, reason: "cannot append a metrics record: \(reason)")
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

    deinit { if metricsFD >= 0 { close(metricsFD) } }
}
