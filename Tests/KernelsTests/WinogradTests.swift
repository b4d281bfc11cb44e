// Winograd F(2x2, 3x3) convolutions against the direct-loop reference: even and odd sizes (partial tiles), 1x1 and
// 1xN images, every chunking of the batch, gradients that add into what is there, and nil gradients skipped.
import XCTest
import Kernels

final class WinogradTests: XCTestCase {
    typealias Case = Conv2DTests.Case

    /// Forward, dX, dW and dB of `s` (a Winograd algorithm) against the Double reference.
    static func check(_ s: ConvShape, seed: UInt64, tolerance: Float = 1e-5, file: StaticString = #filePath,
                      line: UInt = #line) {
        XCTAssertTrue(s.algorithm.isWinograd, file: file, line: line)
        let label = "\(s.algorithm) \(s.inChannels)->\(s.outChannels) \(s.height)x\(s.width) N\(s.batch) B\(s.samplesPerGemm)"
        let c = Case(s, seed: seed)
        let yRef = Buf(c.dY.count)
        Conv2D.forwardNaive(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: yRef.p)
        assertClose(c.forward().array, yRef.array, rtol: tolerance, atol: tolerance, "\(label) y", file: file, line: line)

        // Gradients start non-zero: the kernels must add.
        var rng = SeededRandom(seed &+ 99)
        let dX = Buf(random: c.x.count, &rng), dW = Buf(random: c.w.count, &rng), dB = Buf(random: c.b.count, &rng)
        let rX = dX.copy(), rW = dW.copy(), rB = dB.copy()
        c.backward(dX: dX, dW: dW, dB: dB)
        Conv2D.backwardNaive(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: rX.p, dWeight: rW.p, dBias: rB.p)
        assertClose(dX.array, rX.array, rtol: tolerance, atol: tolerance, "\(label) dX", file: file, line: line)
        assertClose(dW.array, rW.array, rtol: tolerance, atol: tolerance, "\(label) dW", file: file, line: line)
        assertClose(dB.array, rB.array, rtol: tolerance, atol: tolerance, "\(label) dB", file: file, line: line)
    }

    func testMatchesNaiveForEvenOddAndDegenerateSizes() {
        var seed: UInt64 = 500
        for (h, w) in [(8, 8), (7, 7), (6, 5), (5, 6), (1, 1), (1, 4), (3, 2), (2, 2)] {
            for samples in [1, 2, 3] {
                seed += 1
                Self.check(ConvShape(batch: 3, inChannels: 5, outChannels: 7, height: h, width: w, gemmSamples: samples,
                                algorithm: .winograd), seed: seed)
            }
        }
    }

    func testModelShapesUseWinogradAndMatch() {
        // The mnist config's widest convs at each resolution, and the tiny fixture config's 8-channel ones.
        let shapes = [
            ConvShape(batch: 2, inChannels: 96, outChannels: 32, height: 28, width: 28),
            ConvShape(batch: 3, inChannels: 128, outChannels: 64, height: 14, width: 14),
            ConvShape(batch: 5, inChannels: 64, outChannels: 64, height: 7, width: 7),
            ConvShape(batch: 2, inChannels: 8, outChannels: 16, height: 8, width: 8),
        ]
        for (i, s) in shapes.enumerated() { Self.check(s, seed: 600 + UInt64(i), tolerance: 1e-4) }
    }

    func testDefaultAlgorithmRule() {
        // F(4x4) at 28x28 and up with >= 32 channels each side, F(2x2) down to 7x7 and 8 channels.
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 32, outChannels: 32, height: 28, width: 28).algorithm, .winograd4)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 96, outChannels: 32, height: 28, width: 28).algorithm, .winograd4)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 16, outChannels: 32, height: 28, width: 28).algorithm, .winograd)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 64, outChannels: 64, height: 14, width: 14).algorithm, .winograd)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 64, outChannels: 64, height: 7, width: 7).algorithm, .winograd)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 64, outChannels: 64, height: 6, width: 7).algorithm, .im2col)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 1, outChannels: 32, height: 28, width: 28).algorithm, .im2col)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 32, outChannels: 1, height: 28, width: 28).algorithm, .im2col)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 32, outChannels: 32, height: 28, width: 28, stride: 2).algorithm,
                       .im2col)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 32, outChannels: 32, height: 28, width: 28, kernel: 1,
                                 padding: 0).algorithm, .im2col)
        // Forcing im2col on a Winograd-sized conv still works (the tests of Conv2DTests cover that path).
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 32, outChannels: 32, height: 7, width: 7,
                                 algorithm: .im2col).algorithm, .im2col)
    }

    /// One of dX, dW requested at a time (2 x 6 -> 8 channels, 6x7): each still matches the reference.
    /// Returns the case and the dX computed alone, for further checks.
    static func checkGradientsAlone(_ algorithm: ConvAlgorithm, seed: UInt64) -> (Case, dXAlone: Buf) {
        let s = ConvShape(batch: 2, inChannels: 6, outChannels: 8, height: 6, width: 7, algorithm: algorithm)
        let c = Case(s, seed: seed)
        let rX = Buf(c.x.count), rW = Buf(c.w.count)
        Conv2D.backwardNaive(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: rX.p, dWeight: rW.p, dBias: nil)
        let onlyX = Buf(c.x.count)
        c.backward(dX: onlyX, dW: nil, dB: nil)
        assertClose(onlyX.array, rX.array, rtol: 1e-5, atol: 1e-5, "\(algorithm) dX alone")
        let onlyW = Buf(c.w.count)
        c.backward(dX: nil, dW: onlyW, dB: nil)
        assertClose(onlyW.array, rW.array, rtol: 1e-5, atol: 1e-5, "\(algorithm) dW alone")
        return (c, onlyX)
    }

    func testNilGradientsAreSkippedAndTheOthersStillRight() {
        _ = Self.checkGradientsAlone(.winograd, seed: 700)
        // Input gradient only: x may be anything (a frozen layer passes a stand-in), weight must be read.
        let s2 = ConvShape(batch: 1, inChannels: 8, outChannels: 8, height: 4, width: 4, algorithm: .winograd)
        let c2 = Case(s2, seed: 701)
        let dX2 = Buf(c2.x.count), ws = Buf(s2.workspaceCount, fill: .nan)
        let junk = Buf(c2.x.count, fill: .nan)
        withExtendedLifetime((ws, junk)) {
            Conv2D.backward(s2, x: junk.cp, weight: c2.w.cp, dY: c2.dY.cp, dX: dX2.p, dWeight: nil, dBias: nil,
                            workspace: ws.p)
        }
        let r2 = Buf(c2.x.count)
        Conv2D.backwardNaive(s2, x: c2.x.cp, weight: c2.w.cp, dY: c2.dY.cp, dX: r2.p, dWeight: nil, dBias: nil)
        assertClose(dX2.array, r2.array, rtol: 1e-5, atol: 1e-5, "dX with x unread")
    }

    func testSampleBiasIsAddedPerSampleAndChannel() {
        // Both algorithms, both batching paths of im2col: y(sampleBias) = y + sampleBias broadcast over pixels.
        let shapes = [
            ConvShape(batch: 3, inChannels: 8, outChannels: 8, height: 6, width: 6, algorithm: .winograd),
            ConvShape(batch: 3, inChannels: 8, outChannels: 8, height: 6, width: 6, gemmSamples: 1, algorithm: .im2col),
            ConvShape(batch: 3, inChannels: 8, outChannels: 8, height: 6, width: 6, gemmSamples: 2, algorithm: .im2col),
        ]
        for (i, s) in shapes.enumerated() {
            let c = Case(s, seed: 800 + UInt64(i))
            var rng = SeededRandom(900 + UInt64(i))
            let sb = Buf(random: s.batch * s.outChannels, &rng)
            let plain = c.forward()
            let biased = Buf(c.dY.count, fill: .nan), ws = Buf(s.workspaceCount, fill: .nan)
            withExtendedLifetime(ws) {
                Conv2D.forward(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: biased.p, workspace: ws.p,
                               sampleBias: sb.cp)
            }
            let pixels = s.outHeight * s.outWidth
            let expected = plain.array.enumerated().map { k, v in v + sb.p[k / pixels] }
            assertClose(biased.array, expected, rtol: 1e-6, atol: 1e-6, "\(s.algorithm) B\(s.samplesPerGemm) sampleBias")
        }
    }

    func testOverwriteModesEqualAddingIntoZero() {
        // Conv2D (both algorithms) and GroupNorm+SiLU write dX over whatever was there when asked to.
        for algorithm in [ConvAlgorithm.winograd, .im2col] {
            let s = ConvShape(batch: 2, inChannels: 8, outChannels: 8, height: 7, width: 6, algorithm: algorithm)
            let c = Case(s, seed: 1000)
            let added = Buf(c.x.count)
            c.backward(dX: added, dW: nil, dB: nil)
            let overwritten = Buf(c.x.count, fill: .nan), ws = Buf(s.workspaceCount, fill: .nan)
            withExtendedLifetime(ws) {
                Conv2D.backward(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: overwritten.p, dWeight: nil, dBias: nil,
                                workspace: ws.p, overwriteInput: true)
            }
            assertClose(overwritten.array, added.array, rtol: 0, atol: 0, "\(algorithm) overwrite dX")
        }
        let g = GroupNormTests.Case(GroupNormShape(batch: 2, channels: 8, spatial: 20, groups: 2), seed: 1001)
        let m = Buf(g.stats), r = Buf(g.stats), y = Buf(g.x.count)
        GroupNorm.forwardSiLU(g.s, x: g.x.cp, gamma: g.gamma.cp, beta: g.beta.cp, y: y.p, mean: m.p, rstd: r.p)
        let added = Buf(g.x.count), overwritten = Buf(g.x.count, fill: .nan)
        GroupNorm.backwardSiLU(g.s, x: g.x.cp, gamma: g.gamma.cp, beta: g.beta.cp, mean: m.cp, rstd: r.cp, dY: g.dY.cp,
                               dX: added.p, dGamma: nil, dBeta: nil)
        GroupNorm.backwardSiLU(g.s, x: g.x.cp, gamma: g.gamma.cp, beta: g.beta.cp, mean: m.cp, rstd: r.cp, dY: g.dY.cp,
                               dX: overwritten.p, dGamma: nil, dBeta: nil, overwriteInput: true)
        assertClose(overwritten.array, added.array, rtol: 0, atol: 0, "groupnorm+silu overwrite dX")
    }
}
