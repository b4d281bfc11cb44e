// MSELoss and the Elementwise helpers.
import XCTest
import Kernels

final class LossAndElementwiseTests: XCTestCase {
    func testMSELoss() {
        let p = Buf([1, 2, 3, 4, 5]), t = Buf([0, 2, 5, 4, 4])
        // (1 + 0 + 4 + 0 + 1) / 5
        XCTAssertEqual(MSELoss.forward(count: 5, prediction: p.cp, target: t.cp), 1.2, accuracy: 1e-6)
        var rng = SeededRandom(900)
        let n = 53
        let pred = Buf(random: n, &rng), target = Buf(random: n, &rng)
        let d = Buf(n)
        MSELoss.backward(count: n, prediction: pred.cp, target: target.cp, scale: 1, dPrediction: d.p)
        checkGradient("mse dPrediction", param: pred, analytic: d, maxChecks: n,
                      loss: { Double(MSELoss.forward(count: n, prediction: pred.cp, target: target.cp)) })
        let once = d.array
        MSELoss.backward(count: n, prediction: pred.cp, target: target.cp, scale: 0.5, dPrediction: d.p)
        assertClose(d.array, once.map { 1.5 * $0 }, rtol: 1e-6, atol: 0, "mse backward adds scale * gradient")
        // accuracy over many elements
        let big = 100_003
        let ones = Buf(big, fill: 1.0001), zeros = Buf(big)
        XCTAssertEqual(Double(MSELoss.forward(count: big, prediction: ones.cp, target: zeros.cp)), 1.0002, accuracy: 1e-6)
    }

    func testElementwise() {
        var rng = SeededRandom(910)
        let n = 37
        let a = Buf(random: n, &rng), b = Buf(random: n, &rng)
        let y = Buf(n)
        Elementwise.add(count: n, a.cp, b.cp, into: y.p)
        assertClose(y.array, zip(a.array, b.array).map { $0 + $1 }, rtol: 0, atol: 0, "add")
        let alias = a.copy()
        Elementwise.add(count: n, alias.cp, b.cp, into: alias.p)
        assertClose(alias.array, y.array, rtol: 0, atol: 0, "add aliasing a")
        Elementwise.axpy(count: n, alpha: -2, x: b.cp, y: alias.p)
        assertClose(alias.array, zip(a.array, b.array).map { $0 - $1 }, rtol: 1e-6, atol: 1e-6, "axpy")
        Elementwise.scale(count: n, alpha: 3, x: alias.p)
        assertClose(alias.array, zip(a.array, b.array).map { 3 * ($0 - $1) }, rtol: 1e-6, atol: 1e-6, "scale")
        Elementwise.copy(count: n, from: b.cp, to: alias.p)
        XCTAssertEqual(alias.array, b.array)
        Elementwise.zero(alias.p, count: n)
        XCTAssertEqual(alias.array, [Float](repeating: 0, count: n))
        let expected = a.array.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(Elementwise.sumOfSquares(count: n, a.cp), expected, accuracy: 1e-12)
        let big = Buf(50_001, fill: 0.1)
        XCTAssertEqual(Elementwise.sumOfSquares(count: big.count, big.cp), 50_001 * 0.01, accuracy: 1e-3)

        XCTAssertTrue(Elementwise.allFinite(count: n, a.cp))
        for bad in [Float.nan, .infinity, -.infinity] {
            for position in [0, 17, n - 1] {  // vector body and tail
                let c = a.copy()
                c.p[position] = bad
                XCTAssertFalse(Elementwise.allFinite(count: n, c.cp), "\(bad) at \(position)")
            }
        }
    }

    func testGradientCheckerRejectsAWrongGradient() {
        // The finite-difference check must be able to fail: a gradient off by 5% (or one wrong element) fails it.
        var rng = SeededRandom(920)
        let x = Buf(random: 20, &rng), r = Buf(random: 20, &rng)
        let loss = { () -> Double in
            let y = Buf(20)
            SiLU.forward(count: 20, x: x.cp, y: y.p)
            return dot(y, r)
        }
        let good = Buf(20)
        SiLU.backward(count: 20, x: x.cp, dY: r.cp, dX: good.p)
        var numeric = [Float]()
        for i in 0..<20 {
            let saved = x.p[i]
            x.p[i] = saved + 1e-2; let lp = loss()
            x.p[i] = saved - 1e-2; let lm = loss()
            x.p[i] = saved
            numeric.append(Float((lp - lm) / 2e-2))
        }
        let scale = numeric.map(abs).max()!
        XCTAssertNil(worstMismatch(good.array, numeric, rtol: 2e-2, atol: 1e-2 * scale + 1e-5))
        XCTAssertNotNil(worstMismatch(good.scaled(1.05), numeric, rtol: 2e-2, atol: 1e-2 * scale + 1e-5))
        var oneWrong = good.array
        oneWrong[3] = -oneWrong[3] + 0.1
        XCTAssertNotNil(worstMismatch(oneWrong, numeric, rtol: 2e-2, atol: 1e-2 * scale + 1e-5))
    }
}
