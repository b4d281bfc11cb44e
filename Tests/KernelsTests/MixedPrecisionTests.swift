// Convolutions with MatmulPrecision.bf16 (the mixed-precision prototype) against the Double reference: every conv
// algorithm's forward, input and weight gradients stay within a bound set by bf16's rounding of the GEMM operands,
// the switch really changes the arithmetic, and every bf16 kernel variant gives the same bits.
import XCTest
import Kernels

final class MixedPrecisionTests: XCTestCase {
    typealias Case = Conv2DTests.Case

    override func tearDown() {
        MatmulPrecision.current = .fp32
        try? BF16Kernel.select("auto")
    }

    /// The same conv with |x|, |w|, |b|, |dY|: the sums each output's rounding errors are relative to.
    func magnitudes(_ c: Case) -> (y: Buf, dX: Buf, dW: Buf) {
        func abs(_ b: Buf) -> Buf { Buf(b.array.map { Swift.abs($0) }) }
        let x = abs(c.x), w = abs(c.w), b = abs(c.b), dY = abs(c.dY)
        let y = Buf(c.dY.count), dX = Buf(c.x.count), dW = Buf(c.w.count)
        Conv2D.forwardNaive(c.s, x: x.cp, weight: w.cp, bias: b.cp, y: y.p)
        Conv2D.backwardNaive(c.s, x: x.cp, weight: w.cp, dY: dY.cp, dX: dX.p, dWeight: dW.p, dBias: nil)
        return (y, dX, dW)
    }

    /// max |got - want| / magnitude over the elements (the error in units of the magnitude sums).
    func worst(_ got: Buf, _ want: Buf, _ magnitude: Buf) -> Double {
        var w = 0.0
        for i in 0..<got.count {
            w = max(w, Double(Swift.abs(got.p[i] - want.p[i])) / (Double(magnitude.p[i]) + 1e-30))
        }
        return w
    }

    func run(_ c: Case) -> (y: Buf, dX: Buf, dW: Buf) {
        let y = c.forward(), dX = Buf(c.x.count), dW = Buf(c.w.count)
        c.backward(dX: dX, dW: dW, dB: nil)
        return (y, dX, dW)
    }

    /// bf16 keeps 8 significant bits, so rounding an operand errs by at most 2^-8 relative and a product of two by
    /// ~2^-7: im2col's results are within 2^-7 of the magnitude sums (fp32 summation adds ~1e-7). Winograd rounds
    /// the transformed tiles, whose sums exceed the direct ones (F(4x4)'s output transform scales by up to 64), so
    /// its errors are larger. Measured worst on these cases, in units of the magnitude: im2col 0.0025, F(2x2)
    /// 0.0027, F(4x4) 0.016 (6x im2col's); bounds: im2col's rigorous 2^-7, Winograd ~3x the measured.
    static let bounds: [ConvAlgorithm: Double] = [.im2col: 0x1p-7, .winograd: 0.008, .winograd4: 0.05]

    func testEveryConvAlgorithmStaysWithinTheBF16Bound() throws {
        var seed: UInt64 = 900
        let shapes = [
            ConvShape(batch: 2, inChannels: 12, outChannels: 20, height: 9, width: 9, algorithm: .im2col),
            ConvShape(batch: 3, inChannels: 12, outChannels: 20, height: 9, width: 7, stride: 2, gemmSamples: 2),
            ConvShape(batch: 2, inChannels: 12, outChannels: 20, height: 6, width: 6, kernel: 1, padding: 0),
            ConvShape(batch: 3, inChannels: 12, outChannels: 20, height: 9, width: 9, gemmSamples: 2,
                      algorithm: .winograd),
            ConvShape(batch: 3, inChannels: 20, outChannels: 12, height: 10, width: 9, gemmSamples: 1,
                      algorithm: .winograd4),
        ]
        for s in shapes {
            seed += 1
            let c = Case(s, seed: seed)
            let ref = (y: Buf(c.dY.count), dX: Buf(c.x.count), dW: Buf(c.w.count))
            Conv2D.forwardNaive(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: ref.y.p)
            Conv2D.backwardNaive(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: ref.dX.p, dWeight: ref.dW.p,
                                 dBias: nil)
            let mag = magnitudes(c)
            MatmulPrecision.current = .fp32
            let full = run(c)
            MatmulPrecision.current = .bf16
            let half = run(c)
            let label = "\(s.algorithm) \(s.inChannels)->\(s.outChannels) k\(s.kernel) s\(s.stride) \(s.height)x\(s.width)"
            let bound = Self.bounds[s.algorithm] ?? 0
            for (name, got, fp32, want, m) in [("y", half.y, full.y, ref.y, mag.y), ("dX", half.dX, full.dX, ref.dX, mag.dX),
                                               ("dW", half.dW, full.dW, ref.dW, mag.dW)] {
                let err = worst(got, want, m)
                print("[\(label) \(name)] bf16 error \(err) of the magnitude, bound \(bound)")
                XCTAssertLessThanOrEqual(err, bound, "\(label) \(name): bf16 error \(err) of the magnitude")
                // fp32 is ~1e-6 of the magnitude; bf16 must actually have rounded something
                XCTAssertLessThan(worst(fp32, want, m), 1e-5, "\(label) \(name) fp32")
                XCTAssertGreaterThan(err, 1e-5, "\(label) \(name): bf16 mode gave fp32-accurate results")
            }
            // every bf16 kernel variant: the same bits
            for v in BF16Kernel.supported {
                try BF16Kernel.select(v)
                let again = run(c)
                XCTAssertEqual(again.y.array.map(\.bitPattern), half.y.array.map(\.bitPattern), "\(label) y \(v)")
                XCTAssertEqual(again.dW.array.map(\.bitPattern), half.dW.array.map(\.bitPattern), "\(label) dW \(v)")
            }
            try BF16Kernel.select("auto")
        }
    }
}
