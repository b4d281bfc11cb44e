// Upsample2x, ChannelConcat, ChannelBroadcastAdd: exact forward values, finite differences, accumulation.
import XCTest
import Kernels

final class LayoutOpsTests: XCTestCase {
    func testUpsample() {
        let (n, c, h, w) = (2, 3, 3, 2)
        let x = Buf((0..<(n * c * h * w)).map(Float.init))
        let y = Buf(n * c * 4 * h * w, fill: .nan)
        Upsample2x.forward(batch: n, channels: c, height: h, width: w, x: x.cp, y: y.p)
        for p in 0..<(n * c) {
            for i in 0..<(2 * h) {
                for j in 0..<(2 * w) {
                    XCTAssertEqual(y.p[(p * 2 * h + i) * 2 * w + j], x.p[(p * h + i / 2) * w + j / 2])
                }
            }
        }
        var rng = SeededRandom(700)
        let dY = Buf(random: y.count, &rng), dX = Buf(x.count)
        Upsample2x.backward(batch: n, channels: c, height: h, width: w, dY: dY.cp, dX: dX.p)
        checkGradient("upsample dX", param: x, analytic: dX, loss: {
            let out = Buf(y.count)
            Upsample2x.forward(batch: n, channels: c, height: h, width: w, x: x.cp, y: out.p)
            return dot(out, dY)
        })
        let once = dX.array
        Upsample2x.backward(batch: n, channels: c, height: h, width: w, dY: dY.cp, dX: dX.p)
        assertClose(dX.array, once.map { 2 * $0 }, rtol: 1e-6, atol: 0, "upsample dX twice")
    }

    func testConcat() {
        var rng = SeededRandom(710)
        let (n, ca, cb, s) = (2, 3, 2, 5)
        let a = Buf(random: n * ca * s, &rng), b = Buf(random: n * cb * s, &rng)
        func forward() -> Buf {
            let y = Buf(n * (ca + cb) * s, fill: .nan)
            ChannelConcat.forward(batch: n, channelsA: ca, channelsB: cb, spatial: s, a: a.cp, b: b.cp, y: y.p)
            return y
        }
        let y = forward()
        for i in 0..<n {
            for ch in 0..<(ca + cb) {
                for k in 0..<s {
                    let expected = ch < ca ? a.p[(i * ca + ch) * s + k] : b.p[(i * cb + ch - ca) * s + k]
                    XCTAssertEqual(y.p[(i * (ca + cb) + ch) * s + k], expected)
                }
            }
        }
        let dY = Buf(random: y.count, &rng), dA = Buf(a.count), dB = Buf(b.count)
        ChannelConcat.backward(batch: n, channelsA: ca, channelsB: cb, spatial: s, dY: dY.cp, dA: dA.p, dB: dB.p)
        checkGradient("concat dA", param: a, analytic: dA, loss: { dot(forward(), dY) })
        checkGradient("concat dB", param: b, analytic: dB, loss: { dot(forward(), dY) })
        let onceA = dA.array, onlyB = Buf(b.count)
        ChannelConcat.backward(batch: n, channelsA: ca, channelsB: cb, spatial: s, dY: dY.cp, dA: dA.p, dB: nil)
        ChannelConcat.backward(batch: n, channelsA: ca, channelsB: cb, spatial: s, dY: dY.cp, dA: nil, dB: onlyB.p)
        assertClose(dA.array, onceA.map { 2 * $0 }, rtol: 1e-6, atol: 0, "concat dA twice")
        assertClose(onlyB.array, dB.array, rtol: 0, atol: 0, "concat dB alone")
        // overwrite: the same split into buffers holding garbage, which must not leak in.
        let setA = Buf(random: a.count, &rng), setB = Buf(random: b.count, &rng)
        ChannelConcat.backward(batch: n, channelsA: ca, channelsB: cb, spatial: s, dY: dY.cp, dA: setA.p, dB: setB.p,
                               overwrite: true)
        assertClose(setA.array, onceA, rtol: 0, atol: 0, "concat dA overwritten")
        assertClose(setB.array, dB.array, rtol: 0, atol: 0, "concat dB overwritten")
    }

    func testBroadcastAdd() {
        var rng = SeededRandom(720)
        let (n, c, s) = (2, 3, 21)
        let x = Buf(random: n * c * s, &rng), v = Buf(random: n * c, &rng)
        func forward() -> Buf {
            let y = x.copy()
            ChannelBroadcastAdd.forward(batch: n, channels: c, spatial: s, x: y.p, v: v.cp)
            return y
        }
        let y = forward()
        for i in 0..<(n * c * s) { XCTAssertEqual(y.p[i], x.p[i] + v.p[i / s]) }
        let dY = Buf(random: y.count, &rng), dV = Buf(v.count)
        ChannelBroadcastAdd.backward(batch: n, channels: c, spatial: s, dY: dY.cp, dV: dV.p)
        checkGradient("broadcast add dV", param: v, analytic: dV, loss: { dot(forward(), dY) })
        let once = dV.array
        ChannelBroadcastAdd.backward(batch: n, channels: c, spatial: s, dY: dY.cp, dV: dV.p)
        assertClose(dV.array, once.map { 2 * $0 }, rtol: 1e-6, atol: 0, "broadcast add dV twice")
    }
}
