// Linear: GEMM kernels vs loop reference, finite differences, accumulation, nil gradients.
import XCTest
import Kernels

final class LinearTests: XCTestCase {
    func testLinear() {
        var rng = SeededRandom(400)
        let (n, i, o) = (3, 5, 7)
        let x = Buf(random: n * i, &rng), w = Buf(random: o * i, &rng), b = Buf(random: o, &rng)
        let dY = Buf(random: n * o, &rng)
        func forward() -> Buf {
            let y = Buf(n * o, fill: .nan)
            Linear.forward(batch: n, inFeatures: i, outFeatures: o, x: x.cp, weight: w.cp, bias: b.cp, y: y.p)
            return y
        }
        let yRef = Buf(n * o)
        Linear.forwardNaive(batch: n, inFeatures: i, outFeatures: o, x: x.cp, weight: w.cp, bias: b.cp, y: yRef.p)
        assertClose(forward().array, yRef.array, rtol: 1e-5, atol: 1e-6, "linear y")

        let dX = Buf(n * i), dW = Buf(o * i), dB = Buf(o)
        Linear.backward(batch: n, inFeatures: i, outFeatures: o, x: x.cp, weight: w.cp, dY: dY.cp,
                        dX: dX.p, dWeight: dW.p, dBias: dB.p)
        let rX = Buf(n * i), rW = Buf(o * i), rB = Buf(o)
        Linear.backwardNaive(batch: n, inFeatures: i, outFeatures: o, x: x.cp, weight: w.cp, dY: dY.cp,
                             dX: rX.p, dWeight: rW.p, dBias: rB.p)
        assertClose(dX.array, rX.array, rtol: 1e-5, atol: 1e-6, "linear dX")
        assertClose(dW.array, rW.array, rtol: 1e-5, atol: 1e-6, "linear dW")
        assertClose(dB.array, rB.array, rtol: 1e-5, atol: 1e-6, "linear dB")

        let loss = { dot(forward(), dY) }
        checkGradient("linear dX", param: x, analytic: dX, loss: loss)
        checkGradient("linear dW", param: w, analytic: dW, loss: loss)
        checkGradient("linear dB", param: b, analytic: dB, loss: loss)

        // twice = 2x; nil gradients skipped (x unread without dWeight)
        Linear.backward(batch: n, inFeatures: i, outFeatures: o, x: x.cp, weight: w.cp, dY: dY.cp,
                        dX: dX.p, dWeight: dW.p, dBias: dB.p)
        assertClose(dX.array, rX.scaled(2), rtol: 1e-5, atol: 1e-6, "linear dX twice")
        assertClose(dW.array, rW.scaled(2), rtol: 1e-5, atol: 1e-6, "linear dW twice")
        assertClose(dB.array, rB.scaled(2), rtol: 1e-5, atol: 1e-6, "linear dB twice")
        let onlyX = Buf(n * i)
        let nanX = Buf(n * i, fill: .nan)
        withExtendedLifetime(nanX) {
            Linear.backward(batch: n, inFeatures: i, outFeatures: o, x: nanX.cp, weight: w.cp,
                            dY: dY.cp, dX: onlyX.p, dWeight: nil, dBias: nil)
        }
        assertClose(onlyX.array, rX.array, rtol: 1e-5, atol: 1e-6, "linear dX alone")
    }
}
