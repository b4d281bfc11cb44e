// GroupNorm and fused GroupNorm+SiLU: fast vs Double reference, finite differences of dX/dGamma/dBeta,
// numerical care with a large mean, accumulation and nil gradients.
import XCTest
import Kernels

final class GroupNormTests: XCTestCase {
    struct Case {
        let s: GroupNormShape
        let x, gamma, beta, dY: Buf
        init(_ s: GroupNormShape, seed: UInt64, offset: Float = 0, scale: Float = 1) {
            var rng = SeededRandom(seed)
            self.s = s
            let count = s.batch * s.channels * s.spatial
            x = Buf(random: count, &rng, scale: scale, offset: offset)
            gamma = Buf(random: s.channels, &rng, scale: 0.5, offset: 1)
            beta = Buf(random: s.channels, &rng, scale: 0.5)
            dY = Buf(random: count, &rng)
        }
        var stats: Int { s.batch * s.groups }
        func forward(silu: Bool) -> (y: Buf, mean: Buf, rstd: Buf) {
            let y = Buf(x.count, fill: .nan), m = Buf(stats, fill: .nan), r = Buf(stats, fill: .nan)
            if silu {
                GroupNorm.forwardSiLU(s, x: x.cp, gamma: gamma.cp, beta: beta.cp, y: y.p, mean: m.p, rstd: r.p)
            } else {
                GroupNorm.forward(s, x: x.cp, gamma: gamma.cp, beta: beta.cp, y: y.p, mean: m.p, rstd: r.p)
            }
            return (y, m, r)
        }
        func backward(silu: Bool, dX: Buf?, dGamma: Buf?, dBeta: Buf?) {
            let f = forward(silu: silu)
            if silu {
                GroupNorm.backwardSiLU(s, x: x.cp, gamma: gamma.cp, beta: beta.cp, mean: f.mean.cp, rstd: f.rstd.cp,
                                       dY: dY.cp, dX: dX?.p, dGamma: dGamma?.p, dBeta: dBeta?.p)
            } else {
                GroupNorm.backward(s, x: x.cp, gamma: gamma.cp, mean: f.mean.cp, rstd: f.rstd.cp, dY: dY.cp,
                                   dX: dX?.p, dGamma: dGamma?.p, dBeta: dBeta?.p)
            }
        }
    }

    // spatial 49 (7x7: partial SIMD tails) and 20; 2 or 4 channels per group; groups of 600 (several Double
    // flushes of the Float lane sums)
    let shapes = [GroupNormShape(batch: 2, channels: 4, spatial: 49, groups: 2),
                  GroupNormShape(batch: 3, channels: 8, spatial: 20, groups: 2),
                  GroupNormShape(batch: 2, channels: 6, spatial: 300, groups: 3)]

    /// Every instruction-set variant of the C kernels this machine runs, each against the Double reference.
    func testFastMatchesReference() throws {
        defer { try? KernelISA.select("auto") }
        XCTAssertTrue(KernelISA.supported.contains("generic"))
        for isa in KernelISA.supported {
            try KernelISA.select(isa)
            XCTAssertEqual(KernelISA.current, isa)
            checkFastMatchesReference(isa: isa)
        }
    }

    func checkFastMatchesReference(isa: String) {
        for (i, s) in shapes.enumerated() {
            for silu in [false, true] {
                let c = Case(s, seed: 500 + UInt64(i))
                let label = "[\(isa)] groupnorm\(silu ? "+silu" : "") \(i)"
                let f = c.forward(silu: silu)
                let y = Buf(c.x.count), m = Buf(c.stats), r = Buf(c.stats)
                if silu {
                    GroupNorm.forwardSiLUNaive(s, x: c.x.cp, gamma: c.gamma.cp, beta: c.beta.cp, y: y.p, mean: m.p,
                                               rstd: r.p)
                } else {
                    GroupNorm.forwardNaive(s, x: c.x.cp, gamma: c.gamma.cp, beta: c.beta.cp, y: y.p, mean: m.p,
                                           rstd: r.p)
                }
                assertClose(f.y.array, y.array, rtol: 1e-5, atol: 1e-6, "\(label) y")
                assertClose(f.mean.array, m.array, rtol: 1e-6, atol: 1e-7, "\(label) mean")
                assertClose(f.rstd.array, r.array, rtol: 1e-6, atol: 0, "\(label) rstd")

                let dX = Buf(c.x.count), dG = Buf(s.channels), dB = Buf(s.channels)
                c.backward(silu: silu, dX: dX, dGamma: dG, dBeta: dB)
                let rX = Buf(c.x.count), rG = Buf(s.channels), rB = Buf(s.channels)
                if silu {
                    GroupNorm.backwardSiLUNaive(s, x: c.x.cp, gamma: c.gamma.cp, beta: c.beta.cp, mean: m.cp,
                                                rstd: r.cp, dY: c.dY.cp, dX: rX.p, dGamma: rG.p, dBeta: rB.p)
                } else {
                    GroupNorm.backwardNaive(s, x: c.x.cp, gamma: c.gamma.cp, mean: m.cp, rstd: r.cp, dY: c.dY.cp,
                                            dX: rX.p, dGamma: rG.p, dBeta: rB.p)
                }
                assertClose(dX.array, rX.array, rtol: 1e-4, atol: 1e-5, "\(label) dX")
                assertClose(dG.array, rG.array, rtol: 1e-4, atol: 1e-5, "\(label) dGamma")
                assertClose(dB.array, rB.array, rtol: 1e-4, atol: 1e-5, "\(label) dBeta")
            }
        }
    }

    func testNormalisedOutputHasZeroMeanUnitVariance() {
        // gamma 1, beta 0: every (sample, group) of y has mean 0 and biased variance var/(var+eps) (PyTorch's).
        let s = GroupNormShape(batch: 2, channels: 6, spatial: 33, groups: 3)
        let c = Case(s, seed: 510, offset: 3, scale: 2)
        for i in 0..<s.channels { c.gamma.p[i] = 1; c.beta.p[i] = 0 }
        let f = c.forward(silu: false)
        let gs = s.groupSize
        for ng in 0..<c.stats {
            let ys = f.y.array[(ng * gs)..<((ng + 1) * gs)].map(Double.init)
            let xs = c.x.array[(ng * gs)..<((ng + 1) * gs)].map(Double.init)
            let mean = ys.reduce(0, +) / Double(gs)
            let variance = ys.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gs)
            let xm = xs.reduce(0, +) / Double(gs)
            let xv = xs.map { ($0 - xm) * ($0 - xm) }.reduce(0, +) / Double(gs)
            XCTAssertEqual(mean, 0, accuracy: 1e-6)
            XCTAssertEqual(variance, xv / (xv + 1e-5), accuracy: 1e-5)
            XCTAssertEqual(Double(f.mean.p[ng]), xm, accuracy: 1e-5)
        }
    }

    func testLargeMeanStaysAccurate() {
        // mean 1000, spread 0.05: a one-pass E[x^2] - E[x]^2 in Float would lose every digit of the variance.
        let s = GroupNormShape(batch: 1, channels: 4, spatial: 300, groups: 2)
        let c = Case(s, seed: 520, offset: 1000, scale: 0.05)
        let f = c.forward(silu: false)
        let y = Buf(c.x.count), m = Buf(c.stats), r = Buf(c.stats)
        GroupNorm.forwardNaive(s, x: c.x.cp, gamma: c.gamma.cp, beta: c.beta.cp, y: y.p, mean: m.p, rstd: r.p)
        assertClose(f.rstd.array, r.array, rtol: 1e-4, atol: 0, "large-mean rstd")
        assertClose(f.y.array, y.array, rtol: 1e-3, atol: 1e-3, "large-mean y")
    }

    func testGradientsAgainstFiniteDifferences() {
        let s = GroupNormShape(batch: 2, channels: 4, spatial: 9, groups: 2)
        for silu in [false, true] {
            let c = Case(s, seed: 530)
            let dX = Buf(c.x.count), dG = Buf(s.channels), dB = Buf(s.channels)
            c.backward(silu: silu, dX: dX, dGamma: dG, dBeta: dB)
            let loss = { dot(c.forward(silu: silu).y, c.dY) }
            let label = silu ? "groupnorm+silu" : "groupnorm"
            checkGradient("\(label) dX", param: c.x, analytic: dX, eps: 3e-3, maxChecks: 72, loss: loss)
            checkGradient("\(label) dGamma", param: c.gamma, analytic: dG, eps: 3e-3, loss: loss)
            checkGradient("\(label) dBeta", param: c.beta, analytic: dB, eps: 3e-3, loss: loss)
        }
    }

    func testBackwardAddsAndSkipsNil() {
        let s = shapes[0]
        for silu in [false, true] {
            let c = Case(s, seed: 540)
            let dX = Buf(c.x.count), dG = Buf(s.channels), dB = Buf(s.channels)
            c.backward(silu: silu, dX: dX, dGamma: dG, dBeta: dB)
            let once = (dX.array, dG.array, dB.array)
            c.backward(silu: silu, dX: dX, dGamma: dG, dBeta: dB)
            let label = silu ? "groupnorm+silu" : "groupnorm"
            assertClose(dX.array, once.0.map { 2 * $0 }, rtol: 1e-6, atol: 1e-6, "\(label) dX twice")
            assertClose(dG.array, once.1.map { 2 * $0 }, rtol: 1e-6, atol: 1e-6, "\(label) dGamma twice")
            assertClose(dB.array, once.2.map { 2 * $0 }, rtol: 1e-6, atol: 1e-6, "\(label) dBeta twice")
            let onlyX = Buf(c.x.count), onlyG = Buf(s.channels)
            c.backward(silu: silu, dX: onlyX, dGamma: nil, dBeta: nil)
            c.backward(silu: silu, dX: nil, dGamma: onlyG, dBeta: nil)
            assertClose(onlyX.array, once.0, rtol: 1e-6, atol: 1e-6, "\(label) dX alone")
            assertClose(onlyG.array, once.1, rtol: 1e-6, atol: 1e-6, "\(label) dGamma alone")
        }
    }
}
