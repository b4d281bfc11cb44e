// SiLU and the vectorised exp under it: accuracy against the Double reference, finite differences, accumulation.
import XCTest
import Kernels

final class ActivationTests: XCTestCase {
    /// Runs `body` once per instruction-set variant of the C kernels this machine has.
    func forEachISA(_ body: (String) throws -> Void) throws {
        defer { try? KernelISA.select("auto") }
        for isa in KernelISA.supported {
            try KernelISA.select(isa)
            try body(isa)
        }
    }

    func testUnknownOrUnsupportedISAIsRefusedByName() {
        let before = KernelISA.current
        XCTAssertThrowsError(try KernelISA.select("sse9")) { error in
            XCTAssertTrue("\(error)".contains("CONTROLNET_KERNEL_ISA=sse9: unknown instruction set"), "\(error)")
        }
        XCTAssertEqual(KernelISA.current, before)
        XCTAssertNoThrow(try KernelISA.selectFromEnvironment([:]))
        XCTAssertEqual(KernelISA.current, before)
    }

    func testVectorExpAccuracyOverTheFloatRange() throws {
        try forEachISA { isa in try checkVectorExp(isa: isa) }
    }

    func checkVectorExp(isa: String) throws {
        // 16-lane bodies and a partial tail, from the smallest normal result to near Float.greatestFiniteMagnitude
        var xs = [Float]()
        var x: Float = -87
        while x < 88 { xs.append(x); x += 0.0173 }
        let input = Buf(xs), out = Buf(xs.count, fill: .nan)
        FastMath.exp(count: xs.count, x: input.cp, y: out.p)
        var worst = 0.0
        for i in xs.indices {
            let ref = FastMath.expNaive(Double(xs[i]))
            worst = max(worst, abs(Double(out.p[i]) - ref) / ref)
        }
        XCTAssertLessThan(worst, 4e-7, "[\(isa)] vector exp relative error")
        XCTAssertEqual(FastMath.expNaive(1), 2.718_281_828_459_045, accuracy: 1e-14)
        XCTAssertEqual(FastMath.expNaive(-20), 2.061_153_622_438_558e-9, accuracy: 1e-22)

        // saturation: no NaN / inf for extreme inputs, and SiLU's limits hold
        let extreme = Buf([-1000, 1000, -200, 200, 0])
        let e = Buf(5), silu = Buf(5)
        FastMath.exp(count: 5, x: extreme.cp, y: e.p)
        XCTAssertTrue(e.p[0] >= 0 && e.p[0] < 1e-37)
        XCTAssertTrue(e.p[1].isFinite)
        SiLU.forward(count: 5, x: extreme.cp, y: silu.p)
        assertClose(silu.array, [0, 1000, 0, 200, 0], rtol: 1e-7, atol: 1e-30, "silu at extreme inputs")
    }

    func testSiLU() throws {
        try forEachISA { isa in checkSiLU(isa: isa) }
    }

    func checkSiLU(isa: String) {
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
        assertClose(forward().array, ref.array, rtol: 1e-6, atol: 1e-7, "[\(isa)] silu y")
        XCTAssertEqual(Double(ref.p[0]), Double(x.p[0]) / (1 + exp(-Double(x.p[0]))), accuracy: 1e-6)

        let dX = Buf(count), rX = Buf(count)
        SiLU.backward(count: count, x: x.cp, dY: dY.cp, dX: dX.p)
        SiLU.backwardNaive(count: count, x: x.cp, dY: dY.cp, dX: rX.p)
        assertClose(dX.array, rX.array, rtol: 1e-5, atol: 1e-7, "[\(isa)] silu dX")
        checkGradient("silu dX", param: x, analytic: dX, eps: 1e-3, loss: { dot(forward(), dY) })
        SiLU.backward(count: count, x: x.cp, dY: dY.cp, dX: dX.p)
        assertClose(dX.array, rX.scaled(2), rtol: 1e-5, atol: 1e-7, "[\(isa)] silu dX twice")

        // in place (y aliasing x) is allowed
        let inPlace = x.copy()
        SiLU.forward(count: count, x: inPlace.cp, y: inPlace.p)
        assertClose(inPlace.array, ref.array, rtol: 1e-6, atol: 1e-7, "[\(isa)] silu in place")
    }
}
