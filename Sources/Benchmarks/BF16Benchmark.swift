// Measures the bf16 GEMM against OpenBLAS sgemm at given shapes (`controlnet bench-sgemm --precision both`, the
// tables of docs/bf16-kernels.md): sgemm, each bf16 micro-kernel variant on pre-packed operands, the one-call
// form that packs both operands, and what the packing itself costs. Timings are the fastest of `repeats` runs of
// enough back-to-back calls to last ~10 ms, since the model's GEMMs take a few microseconds each.
import Dispatch
import Kernels

public struct BF16Comparison: Sendable, Codable {
    public var shape: SgemmCase
    /// From a recorded step (`bench --gemm-shapes`): calls per step and the phase that issued them.
    public var callsPerStep: Int?, caller: String?
    public var sgemmGflops: Double
    /// Per variant ("avx512bf16", "avx512", ...): GFLOP/s with both operands already packed.
    public var packedGflops: [String: Double]
    /// The variant chosen by "auto", packing A and B inside every call (Gemm.sbgemm).
    public var oneCallGflops: Double
    /// Microseconds to round and pack op(A) (m, k) and op(B) (k, n).
    public var packAMicroseconds, packBMicroseconds: Double
}

public enum BF16Benchmark {
    /// GFLOP/s of the 512-bit fp32 FMA and of VDPBF16PS in a register-only loop (0 when the CPU lacks it).
    public static func peaks() -> (fmaGflops: Double, dpbf16Gflops: Double) {
        BF16Kernel.peakGflops(iterations: 2_000_000)
    }

    /// Seconds per call: the fastest of `repeats` batches of back-to-back calls (after one warm-up batch).
    static func secondsPerCall(flops: Double, repeats: Int, _ body: () -> Void) -> Double {
        let inner = max(1, Int(2e7 / max(flops, 1)))
        var best = Double.infinity
        for r in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<inner { body() }
            let t = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 / Double(inner)
            if r > 0 { best = min(best, t) }
        }
        return best
    }

    public static func compare(_ c: SgemmCase, repeats: Int, callsPerStep: Int? = nil,
                               caller: String? = nil) throws(BF16Kernel.SelectionError) -> BF16Comparison {
        let aCount = c.m * c.k, bCount = c.k * c.n
        let a = UnsafeMutablePointer<Float>.allocate(capacity: max(1, aCount))
        let b = UnsafeMutablePointer<Float>.allocate(capacity: max(1, bCount))
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(1, c.m * c.n))
        let pb = UnsafeMutablePointer<UInt16>.allocate(capacity: BF16PackedB.count(k: c.k, n: c.n))
        defer { a.deallocate(); b.deallocate(); out.deallocate(); pb.deallocate() }
        var state: UInt32 = 12345
        func next() -> Float {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            return Float(state % 2000) / 1000 - 1
        }
        for i in 0..<aCount { a[i] = next() }
        for i in 0..<bCount { b[i] = next() }
        out.initialize(repeating: 0, count: c.m * c.n)
        let lda = c.transA ? c.m : c.k, ldb = c.transB ? c.k : c.n
        let sgemm = secondsPerCall(flops: c.flops, repeats: repeats) {
            Gemm.sgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 1, a: a, lda: lda, b: b,
                       ldb: ldb, beta: 0, c: out, ldc: c.n)
        }
        let chosen = BF16Kernel.current
        defer { try? BF16Kernel.select(chosen) }
        var packed: [String: Double] = [:]
        var packA = Double.infinity
        for v in BF16Kernel.supported where v != "generic" {
            try BF16Kernel.select(v)
            let pa = BF16PackedA(transA: c.transA, m: c.m, k: c.k, a: a, lda: lda)
            Gemm.packBF16(transB: c.transB, k: c.k, n: c.n, b: b, ldb: ldb, into: pb)
            let t = secondsPerCall(flops: c.flops, repeats: repeats) {
                Gemm.sbgemm(m: c.m, n: c.n, k: c.k, alpha: 1, a: pa, b: pb, beta: 0, c: out, ldc: c.n)
            }
            packed[v] = c.flops / t / 1e9
            packA = min(packA, secondsPerCall(flops: Double(aCount) * 8, repeats: repeats) {
                pa.repack(transA: c.transA, a: a, lda: lda)
            })
        }
        try BF16Kernel.select(chosen)
        let packB = secondsPerCall(flops: Double(bCount) * 8, repeats: repeats) {
            Gemm.packBF16(transB: c.transB, k: c.k, n: c.n, b: b, ldb: ldb, into: pb)
        }
        let oneCall = secondsPerCall(flops: c.flops, repeats: repeats) {
            Gemm.sbgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 1, a: a, lda: lda, b: b,
                        ldb: ldb, beta: 0, c: out, ldc: c.n)
        }
        return BF16Comparison(shape: c, callsPerStep: callsPerStep, caller: caller, sgemmGflops: c.flops / sgemm / 1e9,
                              packedGflops: packed, oneCallGflops: c.flops / oneCall / 1e9,
                              packAMicroseconds: packA * 1e6, packBMicroseconds: packB * 1e6)
    }
}
