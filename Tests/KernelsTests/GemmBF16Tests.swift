// Gemm.sbgemm (the bf16 C kernels) against the Double reference on bf16-rounded operands, under every kernel
// variant this machine runs: odd and degenerate sizes, all transposes, padded leading dimensions, alpha/beta;
// the variants against each other (they must agree bit for bit); the rounding against its definition.
import XCTest
import Kernels
import CKernels

final class GemmBF16Tests: XCTestCase {
    func forEachVariant(_ body: (String) throws -> Void) throws {
        defer { try? BF16Kernel.select("auto") }
        XCTAssertTrue(BF16Kernel.supported.contains("generic"))
        for v in BF16Kernel.supported {
            try BF16Kernel.select(v)
            XCTAssertEqual(BF16Kernel.current, v)
            try body(v)
        }
    }

    /// The C rounding (used by every packer) equals the Swift definition on special values and random bits.
    func testRoundingMatchesItsDefinition() {
        var specials: [Float] = [0, -0, 1, -1, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity,
                                 -.infinity, .leastNormalMagnitude, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                                 Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000),  // ties: even, odd
                                 Float(bitPattern: 0x3f80_8001), Float(bitPattern: 0x3f80_7fff),
                                 Float(bitPattern: 0x7f7f_ffff), Float(bitPattern: 0x007f_ffff)]
        XCTAssertEqual(Gemm.bf16Rounded(Float(bitPattern: 0x3f80_8000)).bitPattern, 0x3f80_0000, "tie to even (down)")
        XCTAssertEqual(Gemm.bf16Rounded(Float(bitPattern: 0x3f81_8000)).bitPattern, 0x3f82_0000, "tie to even (up)")
        XCTAssertEqual(Gemm.bf16Rounded(Float(bitPattern: 0x7f7f_ffff)), .infinity, "rounds past the largest bf16")
        XCTAssertEqual(Gemm.bf16Rounded(-.leastNonzeroMagnitude).bitPattern, 0x8000_0000, "subnormal to -0")
        var rng = SeededRandom(7)
        for _ in 0..<100_000 { specials.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        var out = [Float](repeating: 0, count: specials.count)
        ck_bf16_round(specials.count, specials, &out)
        for (x, y) in zip(specials, out) {
            let want = Gemm.bf16Rounded(x)
            if x.isNaN {
                XCTAssertTrue(y.isNaN && y.bitPattern & 0xffff == 0, "NaN \(x.bitPattern) -> \(y.bitPattern)")
            } else if y.bitPattern != want.bitPattern {
                XCTFail("round(\(x.bitPattern)) = \(y.bitPattern), want \(want.bitPattern)")
                return
            }
        }
    }

    /// The error bound of a k-term fp32 sum of exact products: (k + 2) u (|alpha| sum |a b| + |beta c|), u = 2^-24.
    /// A wrong rounding of the operands (e.g. truncation) is off by ~2^-9 relative, far outside it.
    func check(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float, seed: UInt64,
               variant: String) -> [Float] {
        var rng = SeededRandom(seed)
        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
        let a = Buf(random: max(1, (transA ? k : m) * lda), &rng), b = Buf(random: max(1, (transB ? n : k) * ldb), &rng)
        let c0 = Buf(random: m * ldc, &rng)
        if beta == 0 { c0.p.update(repeating: .nan, count: m * ldc) }  // must not leak
        let fast = c0.copy(), slow = c0.copy()
        Gemm.sbgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.cp, lda: lda, b: b.cp,
                    ldb: ldb, beta: beta, c: fast.p, ldc: ldc)
        Gemm.sbgemmNaive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.cp, lda: lda, b: b.cp,
                         ldb: ldb, beta: beta, c: slow.p, ldc: ldc)
        let label = "\(variant) \(transA ? "T" : "N")\(transB ? "T" : "N") \(m)x\(n)x\(k) alpha \(alpha) beta \(beta)"
        for i in 0..<m {
            for j in 0..<ldc {
                let got = fast.p[i * ldc + j], want = slow.p[i * ldc + j]
                if j >= n {  // the padding between rows is not C's: untouched
                    XCTAssertEqual(got.bitPattern, c0.p[i * ldc + j].bitPattern, "\(label): wrote outside C")
                    continue
                }
                var magnitude = beta == 0 ? 0 : abs(Double(beta) * Double(c0.p[i * ldc + j]))
                for p in 0..<k {
                    let x = Gemm.bf16Rounded(transA ? a.p[p * lda + i] : a.p[i * lda + p])
                    let y = Gemm.bf16Rounded(transB ? b.p[j * ldb + p] : b.p[p * ldb + j])
                    magnitude += abs(Double(alpha) * Double(x) * Double(y))
                }
                let bound = Double(k + 2) * 0x1p-24 * magnitude + 1e-30
                if !(abs(Double(got) - Double(want)) <= bound) {
                    XCTFail("\(label): C[\(i), \(j)] = \(got), reference \(want), bound \(bound)")
                    return (0..<m * n).map { fast.p[($0 / n) * ldc + $0 % n] }
                }
            }
        }
        return (0..<m * n).map { fast.p[($0 / n) * ldc + $0 % n] }
    }

    static let sizes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 1, 0), (2, 3, 0), (1, 17, 5), (9, 1, 4), (7, 13, 9), (8, 16, 2), (9, 33, 3), (13, 31, 65),
        (16, 48, 33), (3, 100, 57), (32, 49, 32), (5, 70, 130),
    ]

    func testAgreesWithTheReferenceUnderEveryVariant() throws {
        var results: [String: [[Float]]] = [:]
        try forEachVariant { v in
            var seed: UInt64 = 1
            for (m, n, k) in Self.sizes {
                for transA in [false, true] {
                    for transB in [false, true] {
                        for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                            seed += 1
                            let c = check(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                          beta: beta, seed: seed, variant: v)
                            results[v, default: []].append(c)
                        }
                    }
                }
            }
        }
        // every variant computes the same bits (sbgemm.h): compare each with the scalar one
        guard let generic = results["generic"] else { return XCTFail("no generic results") }
        for (v, r) in results where v != "generic" {
            for (x, y) in zip(r, generic) where x.map(\.bitPattern) != y.map(\.bitPattern) {
                XCTFail("\(v) differs from generic in the bits of a product")
                break
            }
        }
    }

    func testPackedOperandsGiveTheSameBitsAsTheOneCallForm() throws {
        try forEachVariant { v in
            var rng = SeededRandom(3)
            let (m, n, k) = (24, 37, 19)
            let a = Buf(random: k * m, &rng), b = Buf(random: k * n, &rng)
            let one = Buf(m * n), packed = Buf(m * n)
            Gemm.sbgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a.cp, lda: m, b: b.cp, ldb: n,
                        beta: 0, c: one.p, ldc: n)
            let pa = BF16PackedA(transA: true, m: m, k: k, a: a.cp, lda: m)
            let pb = UnsafeMutablePointer<UInt16>.allocate(capacity: BF16PackedB.count(k: k, n: n))
            defer { pb.deallocate() }
            Gemm.packBF16(transB: false, k: k, n: n, b: b.cp, ldb: n, into: pb)
            Gemm.sbgemm(m: m, n: n, k: k, alpha: 1, a: pa, b: pb, beta: 0, c: packed.p, ldc: n)
            XCTAssertEqual(one.array.map(\.bitPattern), packed.array.map(\.bitPattern), v)
        }
    }

    func testAPackedForAnotherShapeIsRefused() {
        let a = Buf(16, fill: 1)
        let pa = BF16PackedA(transA: false, m: 4, k: 4, a: a.cp, lda: 4)
        let pb = UnsafeMutablePointer<UInt16>.allocate(capacity: BF16PackedB.count(k: 2, n: 4))
        defer { pb.deallocate() }
        let c = Buf(8)
        XCTAssertEqual(ck_sbgemm_packed(2, 4, 2, 1, UnsafeRawPointer(pa.rawForTesting), pb, 0, c.p, 4), -1)
    }

    func testUnknownVariantIsRefusedByName() {
        let before = BF16Kernel.current
        XCTAssertThrowsError(try BF16Kernel.select("amx9")) { error in
            XCTAssertTrue("\(error)".contains("CONTROLNET_BF16_KERNEL=amx9: unknown bf16 kernel"), "\(error)")
        }
        XCTAssertEqual(BF16Kernel.current, before)
    }
}
