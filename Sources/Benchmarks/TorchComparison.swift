// Runs the PyTorch reference's torch_bench.py on the same work right after ours (`bench --torch DIR`), so both
// figures come from the same minute of the same machine.
import Foundation
import Training

public struct TorchFigure: Codable, Sendable {
    public var line: String
    public var samplesPerSecond: Double
    public var peakRSSMegabytesRank0: Double?
    public var oursOverTorch: Double
}

public enum TorchComparison {
    /// Runs `python3 DIR/torch_bench.py MODE CONFIG BATCH THREADS WORLD` with STEPS=steps and reads its one result
    /// line ("torch ... N samples/s ... M MiB").
    public static func run(directory: String, mode: TrainingMode, config: String, batchSize: Int, threads: Int,
                           world: Int, steps: Int, ours: Double) throws -> TorchFigure {
        let process = Process()
        // Through a shell that forks python rather than exec'ing it: Linux carries the peak RSS of the process
        // that execs into the new program's ru_maxrss, so a direct spawn would report ours as PyTorch's.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "python3 torch_bench.py \"$@\"; exit $?", "sh", mode.rawValue, config,
                             "\(batchSize)", "\(threads)", "\(world)"]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["STEPS"] = "\(steps)"
        for key in env.keys where key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") { env[key] = nil }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("torch ") }),
              let rate = number(before: " samples/s", in: line) else {
            throw TrainingError("--torch: torch_bench.py in \(directory) failed (exit \(process.terminationStatus)); its output:\n\(text)")
        }
        return TorchFigure(line: String(line), samplesPerSecond: rate,
                           peakRSSMegabytesRank0: number(before: " MiB", in: line), oursOverTorch: ours / rate)
    }

    static func number(before suffix: String, in line: Substring) -> Double? {
        guard let end = line.range(of: suffix)?.lowerBound else { return nil }
        let head = line[..<end]
        let start = head.lastIndex(of: " ").map { head.index(after: $0) } ?? head.startIndex
        return Double(head[start...])
    }
}
