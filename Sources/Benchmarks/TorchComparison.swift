// Runs the PyTorch reference's torch_bench.py on the same work right after ours (`bench --torch DIR`), so both
// figures come from the same minute of the same machine.
import Foundation
import Kernels
import Training

public struct TorchFigure: Codable, Sendable {
    public var line: String
    /// PyTorch's precision: "fp32" (eager) or "bf16" (autocast to bfloat16).
    public var amp: String
    public var samplesPerSecond: Double
    public var peakRSSMegabytesRank0: Double?
    public var oursOverTorch: Double
}

public enum TorchComparison {
    /// Runs `python3 DIR/torch_bench.py MODE CONFIG BATCH THREADS WORLD` with STEPS=steps (and AMP=bf16 for a bf16
    /// `amp`) and reads its one result line ("[eager fp32] torch ... N samples/s ... M MiB", or "[AMP=bf16] ...").
    public static func run(directory: String, mode: TrainingMode, config: String, batchSize: Int, threads: Int,
                           world: Int, steps: Int, amp: Precision = .fp32, ours: Double) throws -> TorchFigure {
        let process = Process()
        // Through a shell that forks python rather than exec'ing it: Linux carries the peak RSS of the process
        // that execs into the new program's ru_maxrss, so a direct spawn would report ours as PyTorch's.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "python3 torch_bench.py \"$@\"; exit $?", "sh", mode.rawValue, config,
                             "\(batchSize)", "\(threads)", "\(world)"]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["STEPS"] = "\(steps)"
        env["AMP"] = amp == .bf16 ? "bf16" : nil
        for key in env.keys where key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") { env[key] = nil }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0, let line = resultLine(text), let rate = number(before: " samples/s", in: line) else {
            throw TrainingError("--torch: torch_bench.py in \(directory) failed (exit \(process.terminationStatus)); its output:\n\(text)")
        }
        return TorchFigure(line: String(line), amp: amp.rawValue, samplesPerSecond: rate,
                           peakRSSMegabytesRank0: number(before: " MiB", in: line), oursOverTorch: ours / rate)
    }

    /// The result line: "torch ..." from older torch_bench.py versions, "[VARIANT] torch ..." from newer ones.
    static func resultLine(_ text: String) -> Substring? {
        text.split(separator: "\n").last { line in
            line.hasPrefix("torch ") || (line.hasPrefix("[") && line.contains("] torch ") && line.contains(" samples/s"))
        }
    }

    static func number(before suffix: String, in line: Substring) -> Double? {
        guard let end = line.range(of: suffix)?.lowerBound else { return nil }
        let head = line[..<end]
        let start = head.lastIndex(of: " ").map { head.index(after: $0) } ?? head.startIndex
        return Double(head[start...])
    }
}
