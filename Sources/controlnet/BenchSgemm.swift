// `controlnet bench-sgemm`: how fast is this machine's sgemm at the GEMM shapes a config's convs issue? JSON.
import ArgumentParser
import Foundation
import Benchmarks
import Kernels
import Training

struct BenchSgemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sgemm",
        abstract: "Measure OpenBLAS sgemm GFLOP/s at a config's conv GEMM shapes, print JSON.")

    @OptionGroup var model: ModelFlags
    @Option(help: "OpenBLAS threads (openblas_set_num_threads).")
    var threads: Int = 1
    @Option(help: "Timed repetitions of each OpenBLAS GEMM (the naive GEMM always runs once).")
    var repeats: Int = 5
    @Option(help: "Batch size of the conv shapes.")
    var batch: Int = 64

    struct Report: Codable {
        var coreName: String
        var threads: Int
        var batch: Int
        var ceiling2048: SgemmMeasurement
        var convShapes: [SgemmMeasurement]
        var naive: [SgemmMeasurement]
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
    }

    func run() throws {
        BLASRuntime.setThreads(threads)
        let cases = SgemmBenchmark.convCases(config: try model.load(), batch: batch)
        let ceiling = SgemmBenchmark.measure(SgemmCase(name: "square 2048", m: 2048, n: 2048, k: 2048),
                                             repeats: max(1, min(repeats, 3)))
        let conv = cases.map { SgemmBenchmark.measure($0, repeats: repeats) }
        // The naive loop manages ~1 GFLOP/s: time it once, on the two smallest forward shapes.
        let naiveCases = cases.filter { $0.name.hasSuffix("forward") }.sorted { $0.flops < $1.flops }.prefix(2)
        let naive = naiveCases.map { SgemmBenchmark.measure($0, repeats: 1, naive: true) }
        let report = Report(coreName: BLASRuntime.coreName, threads: BLASRuntime.threads, batch: batch,
                            ceiling2048: ceiling, convShapes: conv, naive: naive)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}
