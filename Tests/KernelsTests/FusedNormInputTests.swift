// A Winograd conv that normalises its input as it reads it (NormalizedInput: silu(groupnorm(x)) one channel plane at
// a time) must be the conv of the normalised tensor bit for bit: forward, input gradient and weight gradient, in
// fp32 and bf16, F(2x2) and F(4x4), under every instruction-set variant of the C kernels. The statistics it starts
// from must be forwardSiLU's, bit for bit, so a ResBlock's backward (which reads mean and rstd) is unchanged.
import XCTest
import Kernels

final class FusedNormInputTests: XCTestCase {
    override func tearDown() {
        try? KernelISA.select("auto")
    }

    func bits(_ b: Buf) -> [UInt32] { b.array.map(\.bitPattern) }

    /// Sizes off the tile grids (9x10 for F(4x4)'s 4-wide tiles, odd rows) and 3 channels per group.
    func shapes() -> [ConvShape] {
        [ConvShape(batch: 3, inChannels: 12, outChannels: 10, height: 9, width: 10, algorithm: .winograd),
         ConvShape(batch: 2, inChannels: 12, outChannels: 16, height: 9, width: 10, algorithm: .winograd4),
         ConvShape(batch: 2, inChannels: 24, outChannels: 8, height: 12, width: 12, algorithm: .winograd4)]
    }

    func testStatisticsAndPlanesAreForwardSiLUsBitForBit() throws {
        for isa in KernelISA.supported {
            try KernelISA.select(isa)
            for (i, spatial) in [49, 20, 300].enumerated() {
                let s = GroupNormShape(batch: 2, channels: 6, spatial: spatial, groups: 3)
                let c = GroupNormTests.Case(s, seed: 300 + UInt64(i), offset: 3)
                let want = c.forward(silu: true)
                let mean = Buf(c.stats, fill: .nan), rstd = Buf(c.stats, fill: .nan)
                let scale = Buf(s.batch * s.channels, fill: .nan), y = Buf(c.x.count, fill: .nan)
                let norm = GroupNorm.statisticsSiLU(s, x: c.x.cp, gamma: c.gamma.cp, beta: c.beta.cp, mean: mean.p,
                                                    rstd: rstd.p, scale: scale.p)
                norm.materialize(c.x.cp, into: y.p)
                XCTAssertEqual(bits(mean), bits(want.mean), "\(isa) spatial \(spatial): mean")
                XCTAssertEqual(bits(rstd), bits(want.rstd), "\(isa) spatial \(spatial): rstd")
                XCTAssertEqual(bits(y), bits(want.y), "\(isa) spatial \(spatial): normalised planes")
            }
        }
    }

    func testFusedConvIsTheConvOfTheNormalisedInputBitForBit() throws {
        for isa in KernelISA.supported {
            try KernelISA.select(isa)
            for (i, shape) in shapes().enumerated() {
                for precision in [Precision.fp32, .bf16] {
                    var s = shape
                    s.precision = precision
                    XCTAssertTrue(Conv2D.fusesNorm(s))
                    try check(s, seed: 400 + UInt64(i), label: "\(isa) \(shape.algorithm) \(precision)")
                }
            }
        }
        // im2col cannot normalise as it reads; ResBlock writes the activation out for it
        XCTAssertFalse(Conv2D.fusesNorm(ConvShape(batch: 1, inChannels: 4, outChannels: 4, height: 8, width: 8,
                                                  algorithm: .im2col)))
    }

    func check(_ s: ConvShape, seed: UInt64, label: String) throws {
        let gs = GroupNormShape(batch: s.batch, channels: s.inChannels, spatial: s.height * s.width, groups: 4)
        let c = Conv2DTests.Case(s, seed: seed)
        let g = GroupNormTests.Case(gs, seed: seed + 1, offset: 0.5, scale: 2)
        // the unfused path: a = silu(groupnorm(x)) written out, then the conv of a
        let a = g.forward(silu: true).y
        let mean = Buf(g.stats), rstd = Buf(g.stats), scale = Buf(gs.batch * gs.channels)
        let norm = GroupNorm.statisticsSiLU(gs, x: g.x.cp, gamma: g.gamma.cp, beta: g.beta.cp, mean: mean.p,
                                            rstd: rstd.p, scale: scale.p)
        func run(_ input: Buf, _ norm: NormalizedInput?) -> (y: Buf, dX: Buf, dW: Buf) {
            let ws = Buf(s.workspaceCount, fill: .nan)
            let y = Buf(c.dY.count, fill: .nan), dX = Buf(input.count, fill: .nan), dW = Buf(c.w.count)
            withExtendedLifetime(ws) {
                Conv2D.forward(s, x: input.cp, weight: c.w.cp, bias: c.b.cp, y: y.p, workspace: ws.p, norm: norm)
                Conv2D.backward(s, x: input.cp, weight: c.w.cp, dY: c.dY.cp, dX: dX.p, dWeight: dW.p, dBias: nil,
                                workspace: ws.p, overwriteInput: true, norm: norm)
            }
            return (y, dX, dW)
        }
        let want = run(a, nil), got = run(g.x, norm)
        XCTAssertEqual(bits(got.y), bits(want.y), "\(label): forward")
        XCTAssertEqual(bits(got.dX), bits(want.dX), "\(label): input gradient")
        XCTAssertEqual(bits(got.dW), bits(want.dW), "\(label): weight gradient")
        // and the normalisation did something: the conv of raw x differs
        XCTAssertNotEqual(bits(run(g.x, nil).y), bits(want.y), "\(label): normalisation had no effect")
    }
}
