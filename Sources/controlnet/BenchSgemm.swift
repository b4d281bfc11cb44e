// `controlnet bench-sgemm`: how fast is this machine's GEMM at the shapes a config's convs issue? Prints JSON. By
// default OpenBLAS sgemm at the config's im2col conv shapes; `--precision bf16|both` adds the bf16 kernels (each
// variant on packed operands, the one-call form, the packing cost) and the fp32-FMA / VDPBF16PS peaks; `--shapes
// FILE` takes the shapes a real step issued from `bench --gemm-shapes` JSON (docs/bf16-kernels.md is made this way).
import ArgumentParser
import Foundation
import SafeTensors
import Benchmarks
import Kernels
import Training

struct BenchSgemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sgemm",
        abstract: "Measure sgemm (and bf16 GEMM) GFLOP/s at a config's GEMM shapes, print JSON.")

    enum Precision: String, ExpressibleByArgument { case fp32, bf16, both }

    @OptionGroup var model: ModelFlags
    @Option(help: "OpenBLAS threads (openblas_set_num_threads).")
    var threads: Int = 1
    @Option(help: "Timed repetitions of each GEMM (the naive GEMM always runs once).")
    var repeats: Int = 5
    @Option(help: "Batch size of the conv shapes.")
    var batch: Int = 64
    @Option(help: "fp32: OpenBLAS sgemm only; bf16 or both: also the bf16 kernels against it, shape by shape.")
    var precision: Precision = .fp32
    @Option(help: "JSON from `controlnet bench --gemm-shapes`: measure the shapes that step issued instead.")
    var shapes: String?
    @Option(help: "With --shapes: only the shapes taking the most time, this many (0: all).")
    var top: Int = 0

    struct Report: Codable {
        var coreName: String
        var threads: Int
        var batch: Int
        var ceiling2048: SgemmMeasurement
        var convShapes: [SgemmMeasurement]?
        var naive: [SgemmMeasurement]?
        var bf16Kernel: String?, cpuHasBF16Instructions: Bool?
        var fmaPeakGflops: Double?, dpbf16PeakGflops: Double?
        var bf16: [BF16Comparison]?
    }

    func validate() throws {
        do {
            try OptionBounds.count("--threads", threads, OptionBounds.threads)
            try OptionBounds.count("--repeats", repeats, OptionBounds.sgemmRepeats)
            // The naive GEMM runs once at this batch too (~1 GFLOP/s): a bound on the batch is one on the time.
            try OptionBounds.count("--batch", batch, OptionBounds.sgemmBatch)
        } catch { throw ValidationError("\(error)") }
        let cases = SgemmBenchmark.convCases(config: try model.load(), batch: batch)
        let need = SgemmBenchmark.bytesNeeded(cases), available = MemoryPlan.availableBytes
        if need > available {
            throw ValidationError("--batch: \(batch) makes GEMM operands of \(OptionBounds.bytes(need)); this process may use \(OptionBounds.gigabytes(available)). Use a smaller --batch")
        }
        guard top >= 0 else { throw ValidationError("--top must be >= 0 (got \(top))") }
        if let shapes, !FileManager.default.fileExists(atPath: shapes) {
            throw ValidationError("--shapes \(shapes): no such file; write one with `controlnet bench --gemm-shapes`")
        }
    }

    /// (shape, calls per step, caller) from a `bench --gemm-shapes` report, most time first.
    func recordedShapes(_ path: String) throws -> [(SgemmCase, Int, String)] {
        struct StepReport: Decodable { var gemmShapesPerStep: [GemmShapeStats]? }
        let url = URL(fileURLWithPath: path)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ValidationError("--shapes \(path): cannot read it: \(FileReadFailure.reason(url, error))")
        }
        let report: StepReport
        do { report = try JSONDecoder().decode(StepReport.self, from: data) } catch {
            throw ValidationError("--shapes \(path): not a `bench --gemm-shapes` report (\(error)); write one with `controlnet bench --gemm-shapes`")
        }
        guard let stats = report.gemmShapesPerStep, !stats.isEmpty else {
            throw ValidationError("--shapes \(path): no gemmShapesPerStep in it; run `bench --gemm-shapes`")
        }
        // The shapes come from a file: each side and each operand must be one the benchmark can allocate (a
        // negative or huge m crashed, 100000^3 asked for 40 GB). The model's largest GEMMs are far inside this.
        for s in stats {
            let k = s.shape
            for (name, v) in [("m", k.m), ("n", k.n), ("k", k.k)] where !(1...65_536).contains(v) {
                throw ValidationError("--shapes \(path): shape \(k.m)x\(k.n)x\(k.k) (\(k.caller)) has \(name) = \(v); each side must be in 1...65536")
            }
            guard max(k.m * k.k, k.k * k.n, k.m * k.n) <= 1 << 26 else {
                throw ValidationError("--shapes \(path): shape \(k.m)x\(k.n)x\(k.k) (\(k.caller)) has an operand of more than 2^26 floats (256 MB); the benchmark times shapes up to that")
            }
            guard s.calls >= 0 else { throw ValidationError("--shapes \(path): shape \(k.m)x\(k.n)x\(k.k) has \(s.calls) calls") }
        }
        let chosen = top > 0 ? Array(stats.prefix(top)) : stats
        return chosen.map { s in
            let k = s.shape
            let name = "\(k.caller) \(k.transA ? "T" : "N")\(k.transB ? "T" : "N") \(k.m)x\(k.n)x\(k.k)"
            return (SgemmCase(name: name, transA: k.transA, transB: k.transB, m: k.m, n: k.n, k: k.k), s.calls,
                    k.caller)
        }
    }

    func run() throws {
        BLASRuntime.setThreads(threads)
        let convCases = SgemmBenchmark.convCases(config: try model.load(), batch: batch)
        let ceiling = SgemmBenchmark.measure(SgemmCase(name: "square 2048", m: 2048, n: 2048, k: 2048),
                                             repeats: max(1, min(repeats, 3)))
        var report = Report(coreName: BLASRuntime.coreName, threads: BLASRuntime.threads, batch: batch,
                            ceiling2048: ceiling)
        let recorded = try shapes.map(recordedShapes)
        if precision != .bf16 && recorded == nil {
            report.convShapes = convCases.map { SgemmBenchmark.measure($0, repeats: repeats) }
            // The naive loop manages ~1 GFLOP/s: time it once, on the two smallest forward shapes.
            let naiveCases = convCases.filter { $0.name.hasSuffix("forward") }.sorted { $0.flops < $1.flops }.prefix(2)
            report.naive = naiveCases.map { SgemmBenchmark.measure($0, repeats: 1, naive: true) }
        }
        if precision != .fp32 || recorded != nil {
            let peaks = BF16Benchmark.peaks()
            report.fmaPeakGflops = peaks.fmaGflops
            report.dpbf16PeakGflops = peaks.dpbf16Gflops
            report.bf16Kernel = BF16Kernel.current
            report.cpuHasBF16Instructions = BF16Kernel.cpuHasBF16Instructions
            let cases = recorded ?? convCases.map { ($0, 1, "im2col") }
            report.bf16 = try cases.map { c, calls, caller in
                try BF16Benchmark.compare(c, repeats: repeats, callsPerStep: calls, caller: caller)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}
