// Single-precision matrix multiply: the OpenBLAS fast path that every conv, linear and attention kernel goes
// through, and a plain triple loop beside it that the tests use as ground truth.
import CBLAS

public enum Gemm {
    /// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C, all row-major with the given leading dimensions.
    /// op(A) = A^T when `transA` (then A is stored (k, m)); likewise for B (stored (n, k) when `transB`).
    /// With beta == 0 the old contents of C are ignored (NaNs in C do not leak), as BLAS specifies.
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        instrumented(transA: transA, transB: transB, m: m, n: n, k: k) {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta,
                        c, blasint(ldc))
        }
    }

    /// C (m, n) = alpha * A (m, k) * B^T + beta * C with B stored (n, k), computed as A * Bt with Bt (k, n) = B^T
    /// written into `scratch` (k * n floats) first. At the Winograd weight-gradient shapes (m, n = 32-128, k =
    /// 49-196 tiles) OpenBLAS's small NT kernel runs at 45-70 GFLOP/s in a step; its NN kernel plus the transpose
    /// (`cblas_somatcopy`) is 1.2-1.7x faster standalone at k <= 98 and even with it at k = 196-784
    /// (BENCHMARKS.md). The sums run in the same k order as `sgemm` with transB, so results differ by the kernels'
    /// rounding only.
    public static func sgemmTransposingB(m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                                         b: UnsafePointer<Float>, ldb: Int, beta: Float,
                                         c: UnsafeMutablePointer<Float>, ldc: Int,
                                         scratch: UnsafeMutablePointer<Float>) {
        instrumented(transA: false, transB: true, m: m, n: n, k: k) {
            cblas_somatcopy(CblasRowMajor, CblasTrans, blasint(n), blasint(k), 1, b, blasint(ldb), scratch,
                            blasint(n))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(n), blasint(k), alpha, a,
                        blasint(lda), scratch, blasint(n), beta, c, blasint(ldc))
        }
    }

    /// Runs one GEMM under the profiler's gemm phase (its FLOPs counted against the calling phase) and, when
    /// `GemmShapeLog` is on, records its shape and time; empty products are skipped. Shared by every GEMM entry
    /// point so the benchmarks see them alike.
    @inline(__always)
    static func instrumented(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, _ body: () -> Void) {
        let phase = PhaseProfiler.shared.enter(.gemm)
        defer { PhaseProfiler.shared.leave(phase) }
        if m == 0 || n == 0 { return }
        PhaseProfiler.shared.addGemm(m: m, n: n, k: k, caller: phase)
        let log = GemmShapeLog.shared.enabled
        let start = log ? PhaseProfiler.nanoseconds() : 0
        body()
        if log {
            GemmShapeLog.shared.record(transA: transA, transB: transB, m: m, n: n, k: k, caller: phase,
                                       seconds: Double(PhaseProfiler.nanoseconds() - start) * 1e-9)
        }
    }

    /// The reference: each C element is one dot product accumulated in Double. It is the simplest code that is
    /// obviously right, used to check `sgemm` and the kernels built on it (and, in bench-sgemm, as the floor).
    public static func sgemmNaive(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                                  c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let aip = transA ? a[p * lda + i] : a[i * lda + p]
                    let bpj = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(aip) * Double(bpj)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * sum + old)
            }
        }
    }
}
