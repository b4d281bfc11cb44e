// Gemm.sgemm (OpenBLAS) against the Double reference, over every transpose combination, padded leading
// dimensions and the alpha/beta cases the kernels use.
import XCTest
import Kernels

final class GemmTests: XCTestCase {
    func testSgemmMatchesNaiveForAllTransposes() {
        var rng = SeededRandom(1)
        let (m, n, k) = (7, 13, 9)
        for transA in [false, true] {
            for transB in [false, true] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                    // leading dims larger than the logical width exercise the strides
                    let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 5
                    let a = Buf(random: (transA ? k : m) * lda, &rng)
                    let b = Buf(random: (transB ? n : k) * ldb, &rng)
                    let c0 = Buf(random: m * ldc, &rng)
                    let fast = c0.copy(), slow = c0.copy()
                    Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.cp, lda: lda,
                               b: b.cp, ldb: ldb, beta: beta, c: fast.p, ldc: ldc)
                    Gemm.sgemmNaive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.cp,
                                    lda: lda, b: b.cp, ldb: ldb, beta: beta, c: slow.p, ldc: ldc)
                    assertClose(fast.array, slow.array, rtol: 1e-5, atol: 1e-5,
                                "sgemm transA \(transA) transB \(transB) alpha \(alpha) beta \(beta)")
                }
            }
        }
    }

    func testSgemmTransposingBMatchesNaive() {
        var rng = SeededRandom(2)
        // k = 49 and 98 are Winograd tile counts; odd m, n and padded leading dims exercise the edges
        for (m, n, k) in [(7, 13, 9), (32, 32, 98), (64, 33, 49), (5, 1, 3)] {
            for (alpha, beta) in [(Float(1), Float(1)), (1, 0), (-0.5, 0.25)] {
                let lda = k + 3, ldb = k + 5, ldc = n + 2
                let a = Buf(random: m * lda, &rng), b = Buf(random: n * ldb, &rng), c0 = Buf(random: m * ldc, &rng)
                let fast = c0.copy(), slow = c0.copy(), scratch = Buf(k * n)
                Gemm.sgemmTransposingB(m: m, n: n, k: k, alpha: alpha, a: a.cp, lda: lda, b: b.cp, ldb: ldb,
                                       beta: beta, c: fast.p, ldc: ldc, scratch: scratch.p)
                Gemm.sgemmNaive(transA: false, transB: true, m: m, n: n, k: k, alpha: alpha, a: a.cp, lda: lda,
                                b: b.cp, ldb: ldb, beta: beta, c: slow.p, ldc: ldc)
                assertClose(fast.array, slow.array, rtol: 1e-5, atol: 1e-5, "m \(m) n \(n) k \(k) beta \(beta)")
            }
        }
    }

    func testNaiveGemmOnAKnownProduct() {
        // [[1, 2], [3, 4]] x [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
        let a = Buf([1, 2, 3, 4]), b = Buf([5, 6, 7, 8]), c = Buf([Float.nan, .nan, .nan, .nan])
        Gemm.sgemmNaive(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a.cp, lda: 2, b: b.cp, ldb: 2,
                        beta: 0, c: c.p, ldc: 2)
        XCTAssertEqual(c.array, [19, 22, 43, 50])
        let fast = Buf([Float.nan, .nan, .nan, .nan])
        Gemm.sgemm(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a.cp, lda: 2, b: b.cp, ldb: 2,
                   beta: 0, c: fast.p, ldc: 2)
        XCTAssertEqual(fast.array, [19, 22, 43, 50], "beta 0 must ignore (NaN) contents of C")
    }
}
