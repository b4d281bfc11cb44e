// Measures sgemm throughput at the GEMM shapes a model config's convolutions issue (the `bench-sgemm` command and
// the step benchmark's ceiling figure): how fast this machine's BLAS is where it matters.
import Foundation
import Kernels
import Model

/// One GEMM shape: C (m, n) = op(A) (m, k) x op(B) (k, n).
public struct SgemmCase: Sendable, Codable, Hashable {
    public var name: String
    public var transA, transB: Bool
    public var m, n, k: Int

    public init(name: String, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int) {
        self.name = name; self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k
    }

    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

public struct SgemmMeasurement: Sendable, Codable {
    public var shape: SgemmCase
    public var implementation: String  // "openblas" or "naive"
    public var repeats: Int
    /// GFLOP/s of the fastest repeat and of the mean repeat.
    public var bestGflops, meanGflops: Double
    public var bestSeconds: Double
}

public enum SgemmBenchmark {
    /// For each 3x3 conv of the config (largest work first) at batch N with P = N*Ho*Wo output pixels, the three
    /// GEMMs of an im2col conv step: forward W (Cout, Cin*9) x cols (Cin*9, P); backward dW += dY (Cout, P) x
    /// cols^T (P, Cin*9); backward dCols = W^T (Cin*9, Cout) x dY (Cout, P).
    public static func convCases(config: ModelConfig, batch: Int) -> [SgemmCase] {
        ModelCost(config: config).convolutionsByWork.filter { $0.geometry.kernel == 3 }.flatMap { g, _ -> [SgemmCase] in
            let kk = g.inChannels * 9, p = batch * g.outputSide * g.outputSide, label = g.description
            return [
                SgemmCase(name: "\(label) forward", m: g.outChannels, n: p, k: kk),
                SgemmCase(name: "\(label) dWeight", transB: true, m: g.outChannels, n: kk, k: p),
                SgemmCase(name: "\(label) dInput", transA: true, m: kk, n: p, k: g.outChannels),
            ]
        }
    }

    /// Bytes the largest of `cases` allocates (A, B and C in float32), computed in Double so that no shape can
    /// overflow: checked against the memory available before any is measured.
    public static func bytesNeeded(_ cases: [SgemmCase]) -> Double {
        cases.map { 4 * (Double($0.m) * Double($0.k) + Double($0.k) * Double($0.n) + Double($0.m) * Double($0.n)) }.max() ?? 0
    }

    /// Times `repeats` calls (after one untimed warm-up) of C = op(A) op(B) on random data.
    public static func measure(_ c: SgemmCase, repeats: Int, naive: Bool = false) -> SgemmMeasurement {
        precondition(repeats >= 1, "repeats must be >= 1")
        let aCount = c.m * c.k, bCount = c.k * c.n, cCount = c.m * c.n
        let a = UnsafeMutablePointer<Float>.allocate(capacity: aCount)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: bCount)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: cCount)
        defer { a.deallocate(); b.deallocate(); out.deallocate() }
        var rng = UInt32(12345)
        func next() -> Float {  // xorshift: any values will do, but not denormals or zeros
            rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5
            return Float(rng % 2000) / 1000 - 1
        }
        for i in 0..<aCount { a[i] = next() }
        for i in 0..<bCount { b[i] = next() }
        out.initialize(repeating: 0, count: cCount)
        let lda = c.transA ? c.m : c.k, ldb = c.transB ? c.k : c.n
        func run() {
            if naive {
                Gemm.sgemmNaive(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 1, a: a,
                                lda: lda, b: b, ldb: ldb, beta: 0, c: out, ldc: c.n)
            } else {
                Gemm.sgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 1, a: a, lda: lda,
                           b: b, ldb: ldb, beta: 0, c: out, ldc: c.n)
            }
        }
        run()
        let clock = ContinuousClock()
        var best = Double.infinity, total = 0.0
        for _ in 0..<repeats {
            let elapsed = clock.measure { run() }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            best = min(best, seconds)
            total += seconds
        }
        return SgemmMeasurement(shape: c, implementation: naive ? "naive" : "openblas", repeats: repeats,
                                bestGflops: c.flops / best / 1e9, meanGflops: c.flops * Double(repeats) / total / 1e9,
                                bestSeconds: best)
    }
}
