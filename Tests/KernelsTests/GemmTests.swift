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

final class SgemmBenchmarkTests: XCTestCase {
    func testConvCasesFollowTheMnistLayers() {
        let cases = SgemmBenchmark.convCases(batch: 64)
        XCTAssertEqual(cases.count, 3 * SgemmBenchmark.mnistConvLayers.count)
        // res 32->32 at 28x28: W (32, 288) x cols (288, 64*784), then dW (32, 288) and dCols (288, 64*784)
        XCTAssertEqual(cases[0], SgemmCase(name: "res 32->32 @28 forward", m: 32, n: 50_176, k: 288))
        XCTAssertEqual(cases[1], SgemmCase(name: "res 32->32 @28 dWeight", transB: true, m: 32, n: 288, k: 50_176))
        XCTAssertEqual(cases[2], SgemmCase(name: "res 32->32 @28 dInput", transA: true, m: 288, n: 50_176, k: 32))
        XCTAssertEqual(cases[0].flops, 2 * 32 * 50_176 * 288)
    }

    func testMeasureReportsAThroughput() {
        let small = SgemmCase(name: "small", transB: true, m: 8, n: 12, k: 16)
        for naive in [false, true] {
            let m = SgemmBenchmark.measure(small, repeats: 2, naive: naive)
            XCTAssertEqual(m.implementation, naive ? "naive" : "openblas")
            XCTAssertTrue(m.bestGflops.isFinite && m.bestGflops > 0)
            XCTAssertGreaterThanOrEqual(m.bestGflops, m.meanGflops * 0.999_999)
        }
        XCTAssertFalse(BLASRuntime.coreName.isEmpty)
        XCTAssertGreaterThanOrEqual(BLASRuntime.threads, 1)
    }
}
