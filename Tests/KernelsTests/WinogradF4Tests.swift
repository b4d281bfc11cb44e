// Winograd F(4x4, 3x3) against the direct-loop reference: sizes that are and are not multiples of 4 (partial tiles,
// 1x1 and 1xN images), every chunking of the batch, the mnist shapes, the adjoint identities the gradients must
// satisfy, and its error on realistic data next to F(2x2)'s.
import XCTest
import Kernels
import TestSupport

final class WinogradF4Tests: XCTestCase {
    typealias Case = Conv2DTests.Case

    func testMatchesNaiveForOddAndDegenerateSizes() {
        var seed: UInt64 = 1500
        for (h, w) in [(8, 8), (7, 7), (5, 9), (9, 5), (4, 4), (12, 13), (1, 1), (1, 6), (3, 2), (2, 2)] {
            for samples in [1, 2, 3] {
                seed += 1
                WinogradTests.check(ConvShape(batch: 3, inChannels: 5, outChannels: 7, height: h, width: w,
                                              gemmSamples: samples, algorithm: .winograd4), seed: seed)
            }
        }
    }

    func testMnistShapesMatch() {
        // Each resolution of the mnist config, batches longer than a chunk.
        let shapes = [
            ConvShape(batch: 2, inChannels: 32, outChannels: 32, height: 28, width: 28, gemmSamples: 1,
                      algorithm: .winograd4),
            ConvShape(batch: 3, inChannels: 128, outChannels: 64, height: 14, width: 14, gemmSamples: 2,
                      algorithm: .winograd4),
            ConvShape(batch: 5, inChannels: 64, outChannels: 64, height: 7, width: 7, gemmSamples: 2,
                      algorithm: .winograd4),
        ]
        for (i, s) in shapes.enumerated() { WinogradTests.check(s, seed: 1600 + UInt64(i), tolerance: 1e-4) }
    }

    func testChunkRuleKeepsTheTransformedBuffersNearL2() {
        // 36 (Cin + Cout) T floats at most ~1 MB: 2 samples of 32->32 @28 (49 tiles each), 1 of 64->64 and 96->32.
        XCTAssertEqual(ConvShape(batch: 64, inChannels: 32, outChannels: 32, height: 28, width: 28).samplesPerGemm, 2)
        XCTAssertEqual(ConvShape(batch: 64, inChannels: 64, outChannels: 64, height: 28, width: 28).samplesPerGemm, 1)
        XCTAssertEqual(ConvShape(batch: 64, inChannels: 96, outChannels: 32, height: 28, width: 28).samplesPerGemm, 1)
        XCTAssertEqual(ConvShape(batch: 1, inChannels: 32, outChannels: 32, height: 28, width: 28).samplesPerGemm, 1)
    }

    func testGradientsAreTheAdjointsOfForward() {
        // y = conv(x, w) is bilinear, so for any dY: <dY, y> = <x, dX> = <w, dW>, computed in Double from the
        // kernels' Float results; a transform whose adjoint is off by a term breaks these by O(1) relative.
        for (i, (h, w)) in [(8, 8), (7, 5), (6, 10)].enumerated() {
            let s = ConvShape(batch: 2, inChannels: 6, outChannels: 5, height: h, width: w, gemmSamples: 1,
                              algorithm: .winograd4)
            let c = Case(s, seed: 1700 + UInt64(i))
            c.b.zero()
            let y = c.forward(), dX = Buf(c.x.count), dW = Buf(c.w.count)
            c.backward(dX: dX, dW: dW, dB: nil)
            let out = dot(c.dY, y), viaX = dot(c.x, dX), viaW = dot(c.w, dW)
            // Rounding scale: the sum of |terms|.
            var scale = 0.0
            for k in 0..<y.count { scale += abs(Double(c.dY.p[k]) * Double(y.p[k])) }
            XCTAssertEqual(viaX, out, accuracy: 1e-6 * scale, "\(h)x\(w): <x, dX> vs <dY, y>")
            XCTAssertEqual(viaW, out, accuracy: 1e-6 * scale, "\(h)x\(w): <w, dW> vs <dY, y>")
        }
    }

    func testNilGradientsAreSkippedAndOverwriteEqualsAdding() {
        let (c, onlyX) = WinogradTests.checkGradientsAlone(.winograd4, seed: 1800)
        let s = c.s
        // Overwriting writes every element exactly once: equal to adding into zero, over a NaN-filled buffer.
        let overwritten = Buf(c.x.count, fill: .nan), ws = Buf(s.workspaceCount, fill: .nan)
        withExtendedLifetime(ws) {
            Conv2D.backward(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: overwritten.p, dWeight: nil, dBias: nil,
                            workspace: ws.p, overwriteInput: true)
        }
        assertClose(overwritten.array, onlyX.array, rtol: 0, atol: 0, "overwrite dX")
    }

    func testSampleBiasIsAddedPerSampleAndChannel() {
        let s = ConvShape(batch: 3, inChannels: 8, outChannels: 8, height: 9, width: 6, gemmSamples: 2,
                          algorithm: .winograd4)
        let c = Case(s, seed: 1900)
        var rng = SeededRandom(1901)
        let sb = Buf(random: s.batch * s.outChannels, &rng)
        let plain = c.forward()
        let biased = Buf(c.dY.count, fill: .nan), ws = Buf(s.workspaceCount, fill: .nan)
        withExtendedLifetime(ws) {
            Conv2D.forward(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: biased.p, workspace: ws.p, sampleBias: sb.cp)
        }
        let pixels = s.outHeight * s.outWidth
        let expected = plain.array.enumerated().map { k, v in v + sb.p[k / pixels] }
        assertClose(biased.array, expected, rtol: 1e-6, atol: 1e-6, "winograd4 sampleBias")
    }

    /// Worst fraction of the PyTorch-contract allowance (rtol 1e-4, atol 1e-5) over y, dX and dW of `s` against
    /// the Double reference, on data of the given scales.
    private func contractFractions(_ s: ConvShape, seed: UInt64, xScale: Float, wScale: Float, dYScale: Float)
        -> (y: Double, dX: Double, dW: Double) {
        var rng = SeededRandom(seed)
        let x = Buf(random: s.batch * s.inChannels * s.height * s.width, &rng, scale: xScale)
        let w = Buf(random: s.outChannels * s.patchSize, &rng, scale: wScale)
        let b = Buf(random: s.outChannels, &rng, scale: wScale)
        let dY = Buf(random: s.batch * s.outChannels * s.height * s.width, &rng, scale: dYScale)
        let y = Buf(dY.count), dX = Buf(x.count), dW = Buf(w.count), ws = Buf(s.workspaceCount)
        let rY = Buf(dY.count), rX = Buf(x.count), rW = Buf(w.count)
        withExtendedLifetime(ws) {
            Conv2D.forward(s, x: x.cp, weight: w.cp, bias: b.cp, y: y.p, workspace: ws.p)
            Conv2D.backward(s, x: x.cp, weight: w.cp, dY: dY.cp, dX: dX.p, dWeight: dW.p, dBias: nil, workspace: ws.p)
        }
        Conv2D.forwardNaive(s, x: x.cp, weight: w.cp, bias: b.cp, y: rY.p)
        Conv2D.backwardNaive(s, x: x.cp, weight: w.cp, dY: dY.cp, dX: rX.p, dWeight: rW.p, dBias: nil)
        func fraction(_ a: Buf, _ e: Buf) -> Double {
            compareClose(UnsafeBufferPointer(start: a.cp, count: a.count),
                         UnsafeBufferPointer(start: e.cp, count: e.count), label: "").worstRatio
        }
        return (fraction(y, rY), fraction(dX, rX), fraction(dW, rW))
    }

    func testErrorOnRealisticData() {
        // Activations of std ~1 (post-GroupNorm), weights of std ~0.05 (trained convs), output gradients ~1e-3,
        // at the mnist shapes. Printed for the record; the bounds are the measured worst with some margin, so an
        // accuracy regression (or a transform that is wrong by a term, off by orders of magnitude) fails.
        let shapes = [
            ConvShape(batch: 2, inChannels: 64, outChannels: 64, height: 28, width: 28),
            ConvShape(batch: 2, inChannels: 96, outChannels: 32, height: 28, width: 28),
            ConvShape(batch: 2, inChannels: 128, outChannels: 64, height: 14, width: 14),
            ConvShape(batch: 2, inChannels: 128, outChannels: 64, height: 7, width: 7),
        ]
        for (i, base) in shapes.enumerated() {
            for (algorithm, bound) in [(ConvAlgorithm.winograd, 0.5), (.winograd4, 2.0)] {
                var s = base
                s.algorithmChoice = algorithm
                let r = contractFractions(s, seed: 2000 + UInt64(i), xScale: 1.7, wScale: 0.087, dYScale: 1.7e-3)
                let label = "\(algorithm) \(s.inChannels)->\(s.outChannels) @\(s.height)"
                print("[accuracy] \(label): worst fraction of the rtol 1e-4 / atol 1e-5 allowance: "
                      + String(format: "y %.3f, dX %.3f, dW %.3f", r.y, r.dX, r.dW))
                XCTAssertLessThan(max(r.y, r.dX, r.dW), bound, label)
            }
        }
    }
}
