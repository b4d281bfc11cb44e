// Attention: per-head GEMM kernels vs the Double loop reference (including the mnist 49-token shape),
// finite differences of dQKV, softmax rows, accumulation.
import XCTest
import Kernels

final class AttentionTests: XCTestCase {
    struct Case {
        let s: AttentionShape
        let qkv, dA: Buf
        init(_ s: AttentionShape, seed: UInt64, scale: Float = 1) {
            var rng = SeededRandom(seed)
            self.s = s
            qkv = Buf(random: s.batch * 3 * s.channels * s.tokens, &rng, scale: scale)
            dA = Buf(random: s.batch * s.channels * s.tokens, &rng)
        }
        func forward() -> (a: Buf, probs: Buf) {
            let a = Buf(dA.count, fill: .nan), p = Buf(s.probsCount, fill: .nan)
            let ws = Buf(s.workspaceCount, fill: .nan)
            withExtendedLifetime(ws) {
                Attention.forward(s, qkv: qkv.cp, a: a.p, probs: p.p, workspace: ws.p)
            }
            return (a, p)
        }
        func backward(into dQKV: Buf) {
            let f = forward()
            let ws = Buf(s.workspaceCount, fill: .nan)
            withExtendedLifetime(ws) {
                Attention.backward(s, qkv: qkv.cp, probs: f.probs.cp, dA: dA.cp, dQKV: dQKV.p, workspace: ws.p)
            }
        }
    }

    func testFastMatchesReference() {
        let shapes = [AttentionShape(batch: 2, channels: 8, heads: 2, tokens: 5),
                      AttentionShape(batch: 1, channels: 64, heads: 4, tokens: 49),
                      AttentionShape(batch: 2, channels: 6, heads: 3, tokens: 17)]
        for (i, s) in shapes.enumerated() {
            let c = Case(s, seed: 800 + UInt64(i), scale: 2)
            let f = c.forward()
            let a = Buf(c.dA.count), p = Buf(s.probsCount)
            Attention.forwardNaive(s, qkv: c.qkv.cp, a: a.p, probs: p.p)
            assertClose(f.a.array, a.array, rtol: 1e-4, atol: 1e-5, "attention \(i) a")
            assertClose(f.probs.array, p.array, rtol: 1e-4, atol: 1e-6, "attention \(i) probs")
            for row in 0..<(s.batch * s.heads * s.tokens) {
                let sum = f.probs.array[(row * s.tokens)..<((row + 1) * s.tokens)].reduce(0, +)
                XCTAssertEqual(sum, 1, accuracy: 1e-5, "softmax row \(row) sums to 1")
            }
            let d = Buf(c.qkv.count), r = Buf(c.qkv.count)
            c.backward(into: d)
            Attention.backwardNaive(s, qkv: c.qkv.cp, probs: p.cp, dA: c.dA.cp, dQKV: r.p)
            assertClose(d.array, r.array, rtol: 1e-4, atol: 1e-5, "attention \(i) dQKV")
        }
    }

    /// Forward without saved probabilities (one head's at a time in the workspace) and backward recomputing them
    /// give the same bits as with saved ones, in both precisions: the memory-saving path changes no value.
    func testRecomputedProbabilitiesGiveTheSameBits() {
        for precision in [Precision.fp32, .bf16] {
            let s = AttentionShape(batch: 2, channels: 12, heads: 3, tokens: 21, precision: precision)
            let c = Case(s, seed: 820, scale: 2)
            let saved = c.forward()
            let a = Buf(c.dA.count, fill: .nan), ws = Buf(s.workspaceCount, fill: .nan)
            let kept = Buf(c.qkv.count), recomputed = Buf(c.qkv.count)
            withExtendedLifetime(ws) {
                Attention.forward(s, qkv: c.qkv.cp, a: a.p, probs: nil, workspace: ws.p)
                Attention.backward(s, qkv: c.qkv.cp, probs: saved.probs.cp, dA: c.dA.cp, dQKV: kept.p, workspace: ws.p)
                Attention.backward(s, qkv: c.qkv.cp, probs: nil, dA: c.dA.cp, dQKV: recomputed.p, workspace: ws.p)
            }
            XCTAssertEqual(a.array, saved.a.array, "\(precision): forward output without saved probabilities")
            XCTAssertEqual(recomputed.array, kept.array, "\(precision): dQKV from recomputed probabilities")
            XCTAssertFalse(kept.array.allSatisfy { $0 == 0 }, "the gradient is not trivially zero")
        }
    }

    func testGradientAgainstFiniteDifferences() {
        let s = AttentionShape(batch: 2, channels: 4, heads: 2, tokens: 6)
        let c = Case(s, seed: 810, scale: 1.5)
        let d = Buf(c.qkv.count)
        c.backward(into: d)
        // all 144 entries: q, k and v blocks of both heads and both samples
        checkGradient("attention dQKV", param: c.qkv, analytic: d, eps: 3e-3, maxChecks: 144,
                      loss: { dot(c.forward().a, c.dA) })
        let once = d.array
        c.backward(into: d)
        assertClose(d.array, once.map { 2 * $0 }, rtol: 1e-6, atol: 1e-7, "attention dQKV twice")
    }

    func testLargeScoresStayFinite() {
        // scores in the hundreds: a softmax without the max subtraction would overflow to inf/NaN.
        let s = AttentionShape(batch: 1, channels: 4, heads: 1, tokens: 7)
        let c = Case(s, seed: 820, scale: 30)
        let f = c.forward()
        XCTAssertTrue(Elementwise.allFinite(count: f.a.count, f.a.cp))
        XCTAssertTrue(Elementwise.allFinite(count: f.probs.count, f.probs.cp))
    }
}
