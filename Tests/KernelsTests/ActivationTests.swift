// SiLU and the vectorised exp under it: accuracy against the Double reference, finite differences, accumulation.
import XCTest
@testable import Kernels

final class ActivationTests: XCTestCase {
    func testVectorExpAccuracyOverTheFloatRange() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            var v = Vec(repeating: 0)
            for i in 0..<vecWidth { v[i] = x + Float(i) * 0.0137 }
            let e = vexp(v)
            for i in 0..<vecWidth {
                let ref = naiveExp(Double(v[i]))
                worst = max(worst, abs(Double(e[i]) - ref) / ref)
            }
            x += 0.37
        }
        XCTAssertLessThan(worst, 4e-7, "vexp relative error")
        // saturation: no NaN / inf for extreme inputs
        let extreme = vexp(Vec(repeating: -1000))
        XCTAssertTrue(extreme[0] >= 0 && extreme[0] < 1e-37)
        XCTAssertTrue(vexp(Vec(repeating: 1000))[0].isFinite)
        XCTAssertEqual(vsigmoid(Vec(repeating: -200))[0], 0, accuracy: 1e-30)
        XCTAssertEqual(vsigmoid(Vec(repeating: 200))[0], 1)
    }

    func testSiLU() {
        var rng = SeededRandom(600)
        let count = 37  // two full vectors and a tail
        let x = Buf(random: count, &rng, scale: 6), dY = Buf(random: count, &rng)
        func forward() -> Buf {
            let y = Buf(count, fill: .nan)
            SiLU.forward(count: count, x: x.cp, y: y.p)
            return y
        }
        let ref = Buf(count)
        SiLU.forwardNaive(count: count, x: x.cp, y: ref.p)
        assertClose(forward().array, ref.array, rtol: 1e-6, atol: 1e-7, "silu y")
        XCTAssertEqual(Double(ref.p[0]), Double(x.p[0]) / (1 + exp(-Double(x.p[0]))), accuracy: 1e-6)

        let dX = Buf(count), rX = Buf(count)
        SiLU.backward(count: count, x: x.cp, dY: dY.cp, dX: dX.p)
        SiLU.backwardNaive(count: count, x: x.cp, dY: dY.cp, dX: rX.p)
        assertClose(dX.array, rX.array, rtol: 1e-5, atol: 1e-7, "silu dX")
        checkGradient("silu dX", param: x, analytic: dX, eps: 1e-3, loss: { dot(forward(), dY) })
        SiLU.backward(count: count, x: x.cp, dY: dY.cp, dX: dX.p)
        assertClose(dX.array, rX.scaled(2), rtol: 1e-5, atol: 1e-7, "silu dX twice")

        // in place (y aliasing x) is allowed
        let inPlace = x.copy()
        SiLU.forward(count: count, x: inPlace.cp, y: inPlace.p)
        assertClose(inPlace.array, ref.array, rtol: 1e-6, atol: 1e-7, "silu in place")
    }
}
