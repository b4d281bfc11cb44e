// Runs PyTorch on the same work right after ours, so both figures come from the same minute of the same machine:
// a training step through the reference's torch_bench.py (`bench --torch DIR`), or sampling through our
// scripts/torch_sample_bench.py, which imports the reference model from DIR (`bench --mode sample --torch DIR`).
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

/// PyTorch's sampling speed on the same work: no_grad, fp32 or bf16 autocast.
public struct TorchSamplingFigure: Codable, Sendable {
    public var variant: String
    public var line: String
    public var evaluationsPerSecond: Double
    public var peakRSSMegabytesRank0: Double?
    public var oursOverTorch: Double
}

public enum TorchComparison {
    /// Runs `python3 DIR/torch_bench.py MODE CONFIG BATCH THREADS WORLD` with STEPS=steps (and AMP=bf16 for a bf16
    /// `amp`) and reads its one result line ("[eager fp32] torch ... N samples/s ... M MiB", or "[AMP=bf16] ...";
    /// older versions had no bracketed variant).
    public static func run(directory: String, mode: TrainingMode, config: String, batchSize: Int, threads: Int,
                           world: Int, steps: Int, amp: Precision = .fp32, ours: Double) throws -> TorchFigure {
        var environment = ["STEPS": "\(steps)"]
        if amp == .bf16 { environment["AMP"] = "bf16" }
        let text = try python(["torch_bench.py", mode.rawValue, config, "\(batchSize)", "\(threads)", "\(world)"],
                              in: directory, environment: environment, what: "torch_bench.py in \(directory)")
        guard let line = resultLine(text, unit: " samples/s"), let rate = number(before: " samples/s", in: line) else {
            throw TrainingError("--torch: torch_bench.py in \(directory) printed no result line; its output:\n\(text)")
        }
        return TorchFigure(line: String(line), amp: amp.rawValue, samplesPerSecond: rate,
                           peakRSSMegabytesRank0: number(before: " MiB", in: line), oursOverTorch: ours / rate)
    }

    /// The sampling counterpart: `python3 SCRIPT REF_DIR CONFIG BATCH COUNT STEPS THREADS WORLD CONTROLS CFG` with
    /// AMP=bf16 for the autocast variant, reading "... N evaluations/s ... M MiB".
    public static func runSampling(script: String, reference directory: String, config: String, batchSize: Int,
                                   count: Int, steps: Int, threads: Int, world: Int, controls: Int, cfgScale: Float,
                                   repeats: Int, bf16: Bool, ours: Double) throws -> TorchSamplingFigure {
        let arguments = [script, directory, config, "\(batchSize)", "\(count)", "\(steps)", "\(threads)", "\(world)",
                         "\(controls)", "\(cfgScale)"]
        var environment = ["REPEATS": "\(repeats)"]
        if bf16 { environment["AMP"] = "bf16" }
        let text = try python(arguments, in: FileManager.default.currentDirectoryPath, environment: environment,
                              what: script)
        guard let line = resultLine(text, unit: " evaluations/s"), let rate = number(before: " evaluations/s", in: line) else {
            throw TrainingError("--torch: \(script) printed no result line; its output:\n\(text)")
        }
        return TorchSamplingFigure(variant: bf16 ? "bf16 autocast, no_grad" : "fp32, no_grad", line: String(line),
                                   evaluationsPerSecond: rate, peakRSSMegabytesRank0: number(before: " MiB", in: line),
                                   oursOverTorch: ours / rate)
    }

    /// scripts/torch_sample_bench.py: under the working directory, or beside the executable's build directory
    /// (.build/release/controlnet -> scripts/), or nil.
    public static func samplingScript() -> String? {
        let name = "scripts/torch_sample_bench.py"
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(name),
                          exe.deletingLastPathComponent().appendingPathComponent("../../../" + name).standardized,
                          exe.deletingLastPathComponent().appendingPathComponent("../../" + name).standardized]
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }?.path
    }

    /// Runs python3 with `arguments` in `directory`; returns its standard output, or throws with it on failure.
    static func python(_ arguments: [String], in directory: String, environment extra: [String: String],
                       what: String) throws -> String {
        let process = Process()
        // Through a shell that forks python rather than exec'ing it: Linux carries the peak RSS of the process
        // that execs into the new program's ru_maxrss, so a direct spawn would report ours as PyTorch's.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "python3 \"$@\"; exit $?", "sh"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        for (key, value) in extra { env[key] = value }
        // A python child must not think it is an MPI rank.
        for key in env.keys where key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") { env[key] = nil }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TrainingError("--torch: \(what) failed (exit \(process.terminationStatus)); its output:\n\(text)")
        }
        return text
    }

    /// The last line that reports a result: "torch ..." (older torch_bench.py versions) or "[VARIANT] torch ..."
    /// with a figure in `unit` (" samples/s", " evaluations/s").
    static func resultLine(_ text: String, unit: String) -> Substring? {
        text.split(separator: "\n").last { line in
            line.hasPrefix("torch ") || (line.hasPrefix("[") && line.contains("] torch ") && line.contains(unit))
        }
    }

    static func number(before suffix: String, in line: Substring) -> Double? {
        guard let end = line.range(of: suffix)?.lowerBound else { return nil }
        let head = line[..<end]
        let start = head.lastIndex(of: " ").map { head.index(after: $0) } ?? head.startIndex
        return Double(head[start...])
    }
}
