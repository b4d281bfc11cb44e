// Convolutions and attention with bf16 operands (ConvShape/AttentionShape.precision) against Double references:
// every algorithm equals the exact convolution of the rounded operands up to fp32 arithmetic; every conv
// algorithm's forward, input and weight gradients stay within a bound set by bf16's rounding under every bf16
// kernel (native VDPBF16PS also rounds Winograd's transformed tiles); the FMA emulations give the same bits; the
// buffer rounding kernels match their definition; fp32 is untouched by any of it.
import XCTest
import Kernels

final class MixedPrecisionTests: XCTestCase {
    typealias Case = Conv2DTests.Case

    override func tearDown() {
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

    func run(_ c: Case, _ precision: Precision) -> (y: Buf, dX: Buf, dW: Buf) {
        var s = c.s
        s.precision = precision
        let ws = Buf(s.workspaceCount, fill: .nan)
        let y = Buf(c.dY.count, fill: .nan), dX = Buf(c.x.count), dW = Buf(c.w.count)
        withExtendedLifetime(ws) {
            Conv2D.forward(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: y.p, workspace: ws.p)
            Conv2D.backward(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: dX.p, dWeight: dW.p, dBias: nil,
                            workspace: ws.p)
        }
        return (y, dX, dW)
    }

    static let shapes = [
        ConvShape(batch: 2, inChannels: 12, outChannels: 20, height: 9, width: 9, algorithm: .im2col),
        ConvShape(batch: 3, inChannels: 12, outChannels: 20, height: 9, width: 7, stride: 2, gemmSamples: 2),
        ConvShape(batch: 2, inChannels: 12, outChannels: 20, height: 6, width: 6, kernel: 1, padding: 0),
        ConvShape(batch: 3, inChannels: 12, outChannels: 20, height: 9, width: 9, gemmSamples: 2, algorithm: .winograd),
        ConvShape(batch: 3, inChannels: 20, outChannels: 12, height: 10, width: 9, gemmSamples: 1,
                  algorithm: .winograd4),
    ]

    /// bf16 keeps 8 significant bits, so rounding an operand errs by at most 2^-9 relative and a product of two by
    /// ~2^-8: im2col's results are within 2^-7 of the magnitude sums (fp32 summation adds ~1e-7). Winograd rounds
    /// the transformed tiles, whose sums exceed the direct ones (F(4x4)'s output transform scales by up to 64), so
    /// its errors are larger. Measured worst on these cases, in units of the magnitude: im2col 0.0025, F(2x2)
    /// 0.0027, F(4x4) 0.016 (6x im2col's); bounds: im2col's rigorous 2^-7, Winograd ~3x the measured.
    static let bounds: [ConvAlgorithm: Double] = [.im2col: 0x1p-7, .winograd: 0.008, .winograd4: 0.05]

    func testEveryConvAlgorithmStaysWithinTheBF16BoundUnderEveryKernel() throws {
        var seed: UInt64 = 900
        for s in Self.shapes {
            seed += 1
            let c = Case(s, seed: seed)
            let ref = (y: Buf(c.dY.count), dX: Buf(c.x.count), dW: Buf(c.w.count))
            Conv2D.forwardNaive(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: ref.y.p)
            Conv2D.backwardNaive(s, x: c.x.cp, weight: c.w.cp, dY: c.dY.cp, dX: ref.dX.p, dWeight: ref.dW.p,
                                 dBias: nil)
            let mag = magnitudes(c)
            let full = run(c, .fp32)
            let label = "\(s.algorithm) \(s.inChannels)->\(s.outChannels) k\(s.kernel) s\(s.stride) \(s.height)x\(s.width)"
            let bound = Self.bounds[s.algorithm] ?? 0
            var emulated: (y: Buf, dX: Buf, dW: Buf)?
            for v in BF16Kernel.supported {
                try BF16Kernel.select(v)
                let half = run(c, .bf16)
                for (name, got, fp32, want, m) in [("y", half.y, full.y, ref.y, mag.y), ("dX", half.dX, full.dX, ref.dX, mag.dX),
                                                   ("dW", half.dW, full.dW, ref.dW, mag.dW)] {
                    let err = worst(got, want, m)
                    print("[\(label) \(name) \(v)] bf16 error \(err) of the magnitude, bound \(bound)")
                    XCTAssertLessThanOrEqual(err, bound, "\(label) \(name) \(v): bf16 error \(err) of the magnitude")
                    // fp32 is ~1e-6 of the magnitude; bf16 must actually have rounded something
                    XCTAssertLessThan(worst(fp32, want, m), 1e-5, "\(label) \(name) fp32")
                    XCTAssertGreaterThan(err, 1e-5, "\(label) \(name) \(v): bf16 mode gave fp32-accurate results")
                }
                // The emulations give the same bits (all round here and multiply with OpenBLAS; native kernels
                // multiply with VDPBF16PS, in another order).
                if BF16Kernel.isNative { continue }
                if let e = emulated {
                    for (name, a, b) in [("y", half.y, e.y), ("dX", half.dX, e.dX), ("dW", half.dW, e.dW)] {
                        XCTAssertEqual(a.array.map(\.bitPattern), b.array.map(\.bitPattern), "\(label) \(name) \(v)")
                    }
                } else {
                    emulated = half
                }
            }
            try BF16Kernel.select("auto")
        }
    }

    /// The definition: the exact convolution (Double) of the rounded x and w (and dY for the gradients), then
    /// fp32 arithmetic: im2col within (K + 2) 2^-24 of the magnitude sums, Winograd within its fp32 transform error
    /// (1e-5 F(2x2), 1e-4 F(4x4), as in WinogradTests) - far tighter than bf16's own error. Native bf16 kernels
    /// round Winograd's transformed tiles too, so they are held to the bf16 bound of the test above instead.
    func testEachAlgorithmComputesTheConvolutionOfTheRoundedOperands() throws {
        for (algorithm, seed) in [(ConvAlgorithm.im2col, UInt64(77)), (.winograd, 78), (.winograd4, 79)] {
            let s = ConvShape(batch: 2, inChannels: 9, outChannels: 10, height: 9, width: 10, algorithm: algorithm)
            try checkRoundedOperands(s, seed: seed)
        }
    }

    func checkRoundedOperands(_ s: ConvShape, seed: UInt64) throws {
        let c = Case(s, seed: seed)
        let xr = Buf(BF16Buffer.roundNaive(c.x.array)), wr = Buf(BF16Buffer.roundNaive(c.w.array))
        let dYr = Buf(BF16Buffer.roundNaive(c.dY.array))
        let ref = (y: Buf(c.dY.count), dX: Buf(c.x.count), dW: Buf(c.w.count))
        Conv2D.forwardNaive(s, x: xr.cp, weight: wr.cp, bias: c.b.cp, y: ref.y.p)
        Conv2D.backwardNaive(s, x: xr.cp, weight: wr.cp, dY: dYr.cp, dX: ref.dX.p, dWeight: ref.dW.p, dBias: nil)
        let mag = magnitudes(c)
        let bound = s.algorithm == .im2col ? Double(s.patchSize + 2) * 0x1p-24 * 2
            : s.algorithm == .winograd ? 1e-5 : 1e-4
        for v in BF16Kernel.supported {
            try BF16Kernel.select(v)
            if BF16Kernel.isNative && s.algorithm.isWinograd { continue }
            let half = run(c, .bf16)
            for (name, got, want, m) in [("y", half.y, ref.y, mag.y), ("dX", half.dX, ref.dX, mag.dX),
                                         ("dW", half.dW, ref.dW, mag.dW)] {
                let err = worst(got, want, m)
                print("[\(s.algorithm) \(name) \(v)] vs the convolution of the rounded operands: \(err)")
                XCTAssertLessThanOrEqual(err, bound, "\(s.algorithm) \(name) \(v)")
            }
        }
    }

    /// Where the bf16 products run through fp32 kernels, a Winograd conv in bf16 rounds x and dY plane by plane
    /// inside its transforms, and the weights once: it must give the very bits of the fp32 conv of the rounded
    /// operands (rounding is idempotent), for every plane of every sample, chunked or not.
    func testWinogradInBF16IsTheFp32ConvOfTheRoundedOperandsBitForBit() throws {
        for (algorithm, seed) in [(ConvAlgorithm.winograd, UInt64(83)), (.winograd4, 84)] {
            for samples in [1, 2] {
                let s = ConvShape(batch: 3, inChannels: 11, outChannels: 13, height: 10, width: 9,
                                  gemmSamples: samples, algorithm: algorithm)
                let c = Case(s, seed: seed)
                let xr = Buf(BF16Buffer.roundNaive(c.x.array)), wr = Buf(BF16Buffer.roundNaive(c.w.array))
                let dYr = Buf(BF16Buffer.roundNaive(c.dY.array))
                func conv(_ precision: Precision, _ x: Buf, _ w: Buf, _ dY: Buf) -> [[Float]] {
                    var t = s
                    t.precision = precision
                    let ws = Buf(t.workspaceCount, fill: .nan)
                    let y = Buf(dY.count, fill: .nan), dX = Buf(x.count, fill: .nan), dW = Buf(w.count)
                    withExtendedLifetime(ws) {
                        Conv2D.forward(t, x: x.cp, weight: w.cp, bias: c.b.cp, y: y.p, workspace: ws.p)
                        Conv2D.backward(t, x: x.cp, weight: w.cp, dY: dY.cp, dX: dX.p, dWeight: dW.p, dBias: nil,
                                        workspace: ws.p, overwriteInput: true)
                    }
                    return [y.array, dX.array, dW.array]
                }
                let want = conv(.fp32, xr, wr, dYr)
                var checked = 0
                for v in BF16Kernel.supported {
                    try BF16Kernel.select(v)
                    if BF16Kernel.isNative { continue }
                    let got = conv(.bf16, c.x, c.w, c.dY)
                    for (name, g, w) in zip3(["y", "dX", "dW"], got, want) {
                        let differ = (0..<g.count).filter { g[$0].bitPattern != w[$0].bitPattern }
                        XCTAssertTrue(differ.isEmpty, "\(algorithm) samples/GEMM \(samples) kernel \(v) \(name): "
                            + "\(differ.count) of \(g.count) values differ, first at \(differ.first ?? -1)")
                    }
                    checked += 1
                }
                XCTAssertGreaterThan(checked, 0, "no bf16 kernel runs through fp32 products here")
            }
        }
    }

    private func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
        (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
    }

    /// Inference caches the Winograd weights (TransformedWeights); in bf16 the cached U must be the transform of the
    /// rounded weights, as the uncached forward computes it, and one cache serving both precisions must keep them
    /// apart: the same bits as without a cache, under every bf16 kernel.
    func testCachedWinogradWeightsGiveTheSameBitsInEitherPrecision() throws {
        for (algorithm, seed) in [(ConvAlgorithm.winograd, UInt64(81)), (.winograd4, 82)] {
            let c = Case(ConvShape(batch: 2, inChannels: 9, outChannels: 10, height: 9, width: 10, algorithm: algorithm),
                         seed: seed)
            for v in BF16Kernel.supported {
                try BF16Kernel.select(v)
                let cache = TransformedWeights()
                for precision in Precision.allCases + Precision.allCases {
                    var s = c.s
                    s.precision = precision
                    let ws = Buf(s.workspaceCount, fill: .nan)
                    let plain = Buf(c.dY.count, fill: .nan), cached = Buf(c.dY.count, fill: .nan)
                    withExtendedLifetime(ws) {
                        Conv2D.forward(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: plain.p, workspace: ws.p)
                        Conv2D.forward(s, x: c.x.cp, weight: c.w.cp, bias: c.b.cp, y: cached.p, workspace: ws.p,
                                       transformed: cache)
                    }
                    XCTAssertEqual(cached.array.map(\.bitPattern), plain.array.map(\.bitPattern),
                                   "\(algorithm) \(precision) \(v)")
                }
            }
            try BF16Kernel.select("auto")
        }
    }

    func testAttentionInBF16StaysWithinItsBoundAndFp32IsUnchanged() throws {
        var rng = SeededRandom(5)
        for precision in Precision.allCases {
            let s = AttentionShape(batch: 2, channels: 8, heads: 2, tokens: 9, precision: precision)
            let qkv = Buf(random: 2 * 3 * 8 * 9, &rng), dA = Buf(random: 2 * 8 * 9, &rng)
            let a = Buf(2 * 8 * 9), probs = Buf(s.probsCount), ws = Buf(s.workspaceCount), dQKV = Buf(qkv.count)
            Attention.forward(s, qkv: qkv.cp, a: a.p, probs: probs.p, workspace: ws.p)
            Attention.backward(s, qkv: qkv.cp, probs: probs.cp, dA: dA.cp, dQKV: dQKV.p, workspace: ws.p)
            let refA = Buf(a.count), refP = Buf(probs.count), refD = Buf(dQKV.count)
            var s32 = s
            s32.precision = .fp32
            Attention.forwardNaive(s32, qkv: qkv.cp, a: refA.p, probs: refP.p)
            Attention.backwardNaive(s32, qkv: qkv.cp, probs: refP.cp, dA: dA.cp, dQKV: refD.p)
            // values ~1, 9 tokens, head dim 4: bf16's relative 2^-8 per product, a few products deep
            let (rtol, atol): (Float, Float) = precision == .fp32 ? (1e-4, 1e-5) : (3e-2, 2e-2)
            assertClose(a.array, refA.array, rtol: rtol, atol: atol, "attention a \(precision)")
            assertClose(dQKV.array, refD.array, rtol: rtol, atol: atol, "attention dQKV \(precision)")
            if precision == .bf16 {
                XCTAssertNotEqual(a.array, refA.array, "bf16 attention rounded nothing")
            }
        }
    }

    func testBufferRoundingNarrowingAndWideningMatchTheReference() {
        var rng = SeededRandom(11)
        var values: [Float] = (0..<1000).map { _ in Float.random(in: -3...3, using: &rng) }
        values += [0, -0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.leastNormalMagnitude,
                   Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000), Float(bitPattern: 0x7f7f_ffff),
                   65504, 1e-30, -1e30]
        for count in [0, 1, 15, 16, 17, 31, 33, values.count] {
            let x = Array(values.prefix(count))
            let want = BF16Buffer.roundNaive(x), wantBits = BF16Buffer.storeNaive(x)
            let y = Buf(count), source = Buf(x)
            withExtendedLifetime(source) { BF16Buffer.round(count: count, source.cp, into: y.p) }
            XCTAssertEqual(y.array.map(\.bitPattern), want.map(\.bitPattern), "round, \(count)")
            // in place, as the compact activations use them: narrow into the first half, widen back
            let inPlace = Buf(x)
            let half = UnsafeMutableRawPointer(inPlace.p).assumingMemoryBound(to: UInt16.self)
            BF16Buffer.store(count: count, inPlace.cp, into: half)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: half, count: count)), wantBits, "store in place, \(count)")
            BF16Buffer.load(count: count, half, into: inPlace.p)
            XCTAssertEqual(inPlace.array.map(\.bitPattern), want.map(\.bitPattern), "load in place, \(count)")
        }
    }
}
