// The tile transforms of Winograd F(4x4, 3x3) and their adjoints, on one sample's planes, in the layout and loop
// conventions of F(2x2)'s (WinogradTransforms.swift, whose vector helpers and geometry these use). A 6x6 input tile
// d (stride 4, overlapping by 2) becomes V = B^T d B; a 3x3 filter g becomes U = G g G^T; the 36 products M = U V
// give a 4x4 output tile Y = A^T M A. Interpolation points 0, 1, -1, 1/2, -2 and infinity:
//   B^T = [2 -3 -4  3 2 0      G = [ 1/2     0     0       A^T = [1 1  1  1    1 0
//          0 -2  1  5 2 0             1/6    1/6   1/6             0 1 -1  1/2 -2 0
//          0  2 -5  1 2 0            -1/6    1/6  -1/6             0 1  1  1/4  4 0
//          0 -2 -1  2 1 0           -16/15 -8/15 -4/15             0 1 -1  1/8 -8 1]
//          0  1 -2 -1 2 0             1/30 -1/15  2/15
//          0  2 -3 -4 3 2]            0      0     1/2 ]
// (rows of B^T scaled by 2 where that makes them integers, G's by 1/2 to match). Lavin & Gray's points 0, +-1,
// +-2 have A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. The error is dominated by the rounding
// of M = U V (sums over channels), which Y = A^T M A carries back multiplied by up to 8 x 8 wherever two columns
// of A^T reach 8; with 1/2 and -2 only one does. In a float32 simulation that pair beat every other pair from
// +-1/2, +-2, +-1/4, +-4, +-3/2, +-2/3, +-3, +-1/3. Measured against the Double reference on realistic data
// (activations ~1, weights ~0.05, 64-128 channels; WinogradF4Tests), the forward's worst error went from 1.7-2.5x
// the rtol 1e-4 / atol 1e-5 allowance (at outputs near zero, where atol rules) to 0.36-1.14x, at the same operation
// count; F(2x2) stays at 0.12-0.17x.
// Backward uses the exact adjoints (dM = A dY A^T, dd = B dV B^T, dg = G^T dU G with the same rounded constants),
// so the gradients are those of the function forward computes. Element e = 6 a + b of a transformed tile lives in
// matrix e of a (36, rows, ld) buffer. Along a row, 8 tiles at a time: tile values 4j + k are picked by
// splitting a 32-lane load into its four stride-4 lane sets, and outputs are put back by interleaving four vectors.

/// Lanes k, k + 4, ..., k + 28 of the 32 floats at p, for k = 0 ..< 4: value k of 8 tiles 4 apart.
@inline(__always) private func deinterleave4(_ p: UnsafePointer<Float>) -> (V8, V8, V8, V8) {
    let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD32<Float>.self)
    let even = v.evenHalf, odd = v.oddHalf
    return (even.evenHalf, odd.evenHalf, even.oddHalf, odd.oddHalf)
}

/// (a0, b0, a1, b1, ...)
@inline(__always) private func interleave(_ a: V8, _ b: V8) -> SIMD16<Float> {
    SIMD16<Float>(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}

/// (a0, b0, c0, d0, a1, ...): four tile values back into pixel order at p (32 floats), as two rounds of pairing:
/// (a0 c0 a1 c1 ...) with (b0 d0 b1 d1 ...).
@inline(__always) private func storeInterleaved4(_ a: V8, _ b: V8, _ c: V8, _ d: V8, _ p: UnsafeMutablePointer<Float>) {
    let ac = interleave(a, c), bd = interleave(b, d)
    let v = SIMD32<Float>(lowHalf: interleave(ac.lowHalf, bd.lowHalf), highHalf: interleave(ac.highHalf, bd.highHalf))
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD32<Float>.self)
}

/// B^T applied to six values (a column or row of an input tile).
@inline(__always) private func inputTransform<V: SIMD>(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V)
    -> (V, V, V, V, V, V) where V.Scalar == Float {
    (2 * (d0 + d4) + 3 * (d3 - d1) - 4 * d2, 2 * (d4 - d1) + d2 + 5 * d3, 2 * (d4 + d1) - 5 * d2 + d3,
     2 * (d3 - d1) + (d4 - d2), 2 * (d4 - d2) + (d1 - d3), 2 * (d1 + d5) + 3 * (d4 - d2) - 4 * d3)
}

/// B (the adjoint of B^T) applied to six values: dd_0 ..< dd_6 of one row or column of a tile.
@inline(__always) private func inputAdjoint(_ v0: V8, _ v1: V8, _ v2: V8, _ v3: V8, _ v4: V8, _ v5: V8)
    -> (V8, V8, V8, V8, V8, V8) {
    (2 * v0, 2 * (v2 - v1 - v3 + v5) + v4 - 3 * v0, (v1 - v3) - 4 * v0 - 5 * v2 - 2 * v4 - 3 * v5,
     3 * v0 + 5 * v1 + v2 + 2 * v3 - v4 - 4 * v5, 2 * (v0 + v1 + v2 + v4) + v3 + 3 * v5, 2 * v5)
}

/// A^T applied to six values: four outputs.
@inline(__always) private func outputTransform(_ m0: V8, _ m1: V8, _ m2: V8, _ m3: V8, _ m4: V8, _ m5: V8)
    -> (V8, V8, V8, V8) {
    let s12 = m1 + m2, d12 = m1 - m2
    return (m0 + s12 + m3 + m4, d12 + 0.5 * m3 - 2 * m4, s12 + 0.25 * m3 + 4 * m4, d12 + 0.125 * m3 - 8 * m4 + m5)
}

/// A (the adjoint of A^T) applied to four values: six.
@inline(__always) private func outputAdjoint(_ y0: V8, _ y1: V8, _ y2: V8, _ y3: V8) -> (V8, V8, V8, V8, V8, V8) {
    let e = y0 + y2, o = y1 + y3
    return (y0, e + o, e - o, y0 + 0.5 * y1 + 0.25 * y2 + 0.125 * y3, y0 - 2 * y1 + 4 * y2 - 8 * y3, y3)
}

enum WinogradF4: WinogradTiles {
    static let tile = 4
    /// The input adjoint's twelve rows (the most any transform uses).
    static let scratchRows = 12

    /// G's non-binary constants, rounded once for filterTransform and filterAdjoint alike.
    private static let sixth: Float = 1.0 / 6, fourFifteenths: Float = 4.0 / 15, thirtieth: Float = 1.0 / 30

    /// G applied to three values.
    @inline(__always) private static func filterTransform<V: SIMD>(_ x0: V, _ x1: V, _ x2: V) -> (V, V, V, V, V, V)
        where V.Scalar == Float {
        (0.5 * x0, (x0 + x1 + x2) * sixth, -(x0 - x1 + x2) * sixth, -(4 * x0 + 2 * x1 + x2) * fourFifteenths,
         (x0 - 2 * x1 + 4 * x2) * thirtieth, 0.5 * x2)
    }

    /// G^T applied to six values: the adjoint of filterTransform (same coefficients, up to rounding).
    @inline(__always) private static func filterAdjoint(_ u: (Float, Float, Float, Float, Float, Float))
        -> (Float, Float, Float) {
        let p = (u.1 + u.2) * sixth, m = (u.1 - u.2) * sixth, t = u.3 * fourFifteenths, r = u.4 * thirtieth
        return (0.5 * u.0 + m - 4 * t + r, p - 2 * t - 2 * r, m - t + 4 * r + 0.5 * u.5)
    }

    /// Eight filters per vector (FilterLanes), in either layout, as F(2x2)'s.
    static func transformWeights(outChannels: Int, inChannels: Int, weight: UnsafePointer<Float>,
                                 u: UnsafeMutablePointer<Float>, transposed: Bool) {
        let plane = outChannels * inChannels
        forEachFilterGroup(outChannels: outChannels, inChannels: inChannels, weight: weight,
                           transposed: transposed) { g, f in
            // G g column by column (c_j.a: row a, column j of the 6x3 result), then each row a times G^T.
            let c0 = filterTransform(g[0], g[3], g[6]), c1 = filterTransform(g[1], g[4], g[7])
            let c2 = filterTransform(g[2], g[5], g[8])
            @inline(__always) func row(_ a: Int, _ x0: V8, _ x1: V8, _ x2: V8) {
                let r = filterTransform(x0, x1, x2), o = u + 6 * a * plane + f
                g.put(r.0, o); g.put(r.1, o + plane); g.put(r.2, o + 2 * plane); g.put(r.3, o + 3 * plane)
                g.put(r.4, o + 4 * plane); g.put(r.5, o + 5 * plane)
            }
            row(0, c0.0, c1.0, c2.0); row(1, c0.1, c1.1, c2.1); row(2, c0.2, c1.2, c2.2)
            row(3, c0.3, c1.3, c2.3); row(4, c0.4, c1.4, c2.4); row(5, c0.5, c1.5, c2.5)
        }
    }

    static func addWeightGradient(outChannels: Int, inChannels: Int, dU: UnsafePointer<Float>,
                                  dWeight: UnsafeMutablePointer<Float>) {
        let plane = outChannels * inChannels
        for f in 0..<plane {
            // t_a = row a of dU times G (3 values), then dWeight += G^T t column by column.
            @inline(__always) func row(_ a: Int) -> (Float, Float, Float) {
                let q = dU + 6 * a * plane + f
                return filterAdjoint((q[0], q[plane], q[2 * plane], q[3 * plane], q[4 * plane], q[5 * plane]))
            }
            let t0 = row(0), t1 = row(1), t2 = row(2), t3 = row(3), t4 = row(4), t5 = row(5)
            let c0 = filterAdjoint((t0.0, t1.0, t2.0, t3.0, t4.0, t5.0))
            let c1 = filterAdjoint((t0.1, t1.1, t2.1, t3.1, t4.1, t5.1))
            let c2 = filterAdjoint((t0.2, t1.2, t2.2, t3.2, t4.2, t5.2))
            let g = dWeight + 9 * f
            g[0] += c0.0; g[3] += c0.1; g[6] += c0.2
            g[1] += c1.0; g[4] += c1.1; g[7] += c1.2
            g[2] += c2.0; g[5] += c2.1; g[8] += c2.2
        }
    }

    /// x: one sample (C, H, W) -> v (36, C, ld) columns [col0, col0 + tiles). scratch: (scratchRows * rowStride).
    /// As in F(2x2): rows outside the image read a zero row, row combinations are written one column in, between
    /// zero borders set once.
    static func transformInput(_ geo: WinogradGeometry, channels: Int, x: UnsafePointer<Float>,
                               v: UnsafeMutablePointer<Float>, ld: Int, col0: Int,
                               scratch: UnsafeMutablePointer<Float>, input: PlaneInput) {
        let h = geo.height, w = geo.width, rs = geo.rowStride, tw = geo.tilesW
        let t0 = scratch, t1 = t0 + rs, t2 = t1 + rs, t3 = t2 + rs, t4 = t3 + rs, t5 = t4 + rs, zero = t5 + rs
        let stride = channels * ld
        scratch.update(repeating: 0, count: 7 * rs)
        for c in 0..<channels {
            let xc = input.plane(x + c * h * w, channel: c, count: h * w)
            @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> { r >= 0 && r < h ? xc + r * w : UnsafePointer(zero) }
            for i in 0..<geo.tilesH {
                // padded rows 4i ..< 4i + 6 are image rows 4i - 1 ..< 4i + 5
                let r0 = row(4 * i - 1), r1 = row(4 * i), r2 = row(4 * i + 1), r3 = row(4 * i + 2)
                let r4 = row(4 * i + 3), r5 = row(4 * i + 4)
                @inline(__always) func rows<V: SIMD>(_ k: Int, _ type: V.Type) where V.Scalar == Float {
                    let o = inputTransform(load(r0 + k, type), load(r1 + k, type), load(r2 + k, type),
                                           load(r3 + k, type), load(r4 + k, type), load(r5 + k, type))
                    store(o.0, t0 + 1 + k); store(o.1, t1 + 1 + k); store(o.2, t2 + 1 + k)
                    store(o.3, t3 + 1 + k); store(o.4, t4 + 1 + k); store(o.5, t5 + 1 + k)
                }
                rowLoop(w, { rows($0, V8.self) }, { rows($0, V4.self) }, { k in
                    let o = inputTransform(SIMD2(r0[k], 0), SIMD2(r1[k], 0), SIMD2(r2[k], 0), SIMD2(r3[k], 0),
                                           SIMD2(r4[k], 0), SIMD2(r5[k], 0))
                    t0[1 + k] = o.0[0]; t1[1 + k] = o.1[0]; t2[1 + k] = o.2[0]
                    t3[1 + k] = o.3[0]; t4[1 + k] = o.4[0]; t5[1 + k] = o.5[0]
                })
                let base = v + c * ld + col0 + i * tw
                columnTransform(t0, base, stride, tw)
                columnTransform(t1, base + 6 * stride, stride, tw)
                columnTransform(t2, base + 12 * stride, stride, tw)
                columnTransform(t3, base + 18 * stride, stride, tw)
                columnTransform(t4, base + 24 * stride, stride, tw)
                columnTransform(t5, base + 30 * stride, stride, tw)
            }
        }
    }

    /// The B^T pass along a row: tile j's six values t[4j ..< 4j+6] -> out[j], out[j + s], ... (6 matrices).
    @inline(__always)
    private static func columnTransform(_ t: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ s: Int,
                                        _ tiles: Int) {
        slackLoop(tiles) { j in
            let (d0, d1, d2, d3) = deinterleave4(t + 4 * j), (d4, d5, _, _) = deinterleave4(t + 4 * j + 4)
            let o = inputTransform(d0, d1, d2, d3, d4, d5)
            let p = out + j
            store8(o.0, p); store8(o.1, p + s); store8(o.2, p + 2 * s); store8(o.3, p + 3 * s)
            store8(o.4, p + 4 * s); store8(o.5, p + 5 * s)
        }
    }

    /// m (36, C, ld) columns [col0, col0 + tiles) -> y: one sample (C, H, W) = A^T M A + bias + sampleBias,
    /// overwritten; bias and sampleBias (this sample's row) are (C) or nil. scratch: (scratchRows * rowStride).
    static func transformOutput(_ geo: WinogradGeometry, channels: Int, m: UnsafePointer<Float>, ld: Int, col0: Int,
                                bias: UnsafePointer<Float>?, sampleBias: UnsafePointer<Float>?,
                                y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let h = geo.height, w = geo.width, tw = geo.tilesW, rs = geo.rowStride
        let row0 = scratch, row1 = row0 + rs, row2 = row1 + rs, row3 = row2 + rs
        let stride = channels * ld
        for c in 0..<channels {
            let bv = V8(repeating: (bias?[c] ?? 0) + (sampleBias?[c] ?? 0))
            let yc = y + c * h * w
            for i in 0..<geo.tilesH {
                let base = m + c * ld + col0 + i * tw
                slackLoop(tw) { j in
                    // Along a (tile rows) for each column q: column(q).p is output row p's value at q.
                    @inline(__always) func column(_ q: Int) -> (V8, V8, V8, V8) {
                        let o = base + q * stride + j
                        return outputTransform(load8(o), load8(o + 6 * stride), load8(o + 12 * stride),
                                               load8(o + 18 * stride), load8(o + 24 * stride), load8(o + 30 * stride))
                    }
                    let q0 = column(0), q1 = column(1), q2 = column(2), q3 = column(3), q4 = column(4)
                    let q5 = column(5)
                    let y0 = outputTransform(q0.0, q1.0, q2.0, q3.0, q4.0, q5.0)
                    storeInterleaved4(y0.0 + bv, y0.1 + bv, y0.2 + bv, y0.3 + bv, row0 + 4 * j)
                    let y1 = outputTransform(q0.1, q1.1, q2.1, q3.1, q4.1, q5.1)
                    storeInterleaved4(y1.0 + bv, y1.1 + bv, y1.2 + bv, y1.3 + bv, row1 + 4 * j)
                    let y2 = outputTransform(q0.2, q1.2, q2.2, q3.2, q4.2, q5.2)
                    storeInterleaved4(y2.0 + bv, y2.1 + bv, y2.2 + bv, y2.3 + bv, row2 + 4 * j)
                    let y3 = outputTransform(q0.3, q1.3, q2.3, q3.3, q4.3, q5.3)
                    storeInterleaved4(y3.0 + bv, y3.1 + bv, y3.2 + bv, y3.3 + bv, row3 + 4 * j)
                }
                (yc + 4 * i * w).update(from: row0, count: w)
                if 4 * i + 1 < h { (yc + (4 * i + 1) * w).update(from: row1, count: w) }
                if 4 * i + 2 < h { (yc + (4 * i + 2) * w).update(from: row2, count: w) }
                if 4 * i + 3 < h { (yc + (4 * i + 3) * w).update(from: row3, count: w) }
            }
        }
    }

    /// Adjoint of transformOutput (without bias): dY one sample (C, H, W) -> dM (36, C, ld) columns
    /// [col0, col0 + tiles), overwritten. scratch: (scratchRows * rowStride).
    static func transformOutputAdjoint(_ geo: WinogradGeometry, channels: Int, dY: UnsafePointer<Float>,
                                       dM: UnsafeMutablePointer<Float>, ld: Int, col0: Int,
                                       scratch: UnsafeMutablePointer<Float>,
                                       rounding: UnsafeMutablePointer<Float>?) {
        let h = geo.height, w = geo.width, tw = geo.tilesW, rs = geo.rowStride
        let row0 = scratch, row1 = row0 + rs, row2 = row1 + rs, row3 = row2 + rs
        let stride = channels * ld
        // Columns past the image (widths not a multiple of 4, vector slack) stay zero.
        scratch.update(repeating: 0, count: 4 * rs)
        for c in 0..<channels {
            let yc = roundedPlane(dY + c * h * w, count: h * w, rounding)
            for i in 0..<geo.tilesH {
                @inline(__always) func fill(_ dst: UnsafeMutablePointer<Float>, _ r: Int) {
                    if r < h { dst.update(from: yc + r * w, count: w) } else { dst.update(repeating: 0, count: w) }
                }
                fill(row0, 4 * i); fill(row1, 4 * i + 1); fill(row2, 4 * i + 2); fill(row3, 4 * i + 3)
                let base = dM + c * ld + col0 + i * tw
                slackLoop(tw) { j in
                    // Along the columns of each dy row (g_p.q: row p, matrix column q), then along the rows.
                    @inline(__always) func rowAdjoint(_ r: UnsafeMutablePointer<Float>) -> (V8, V8, V8, V8, V8, V8) {
                        let (y0, y1, y2, y3) = deinterleave4(r + 4 * j)
                        return outputAdjoint(y0, y1, y2, y3)
                    }
                    let g0 = rowAdjoint(row0), g1 = rowAdjoint(row1), g2 = rowAdjoint(row2), g3 = rowAdjoint(row3)
                    @inline(__always) func put(_ q: Int, _ a: V8, _ b: V8, _ c: V8, _ d: V8) {
                        let o = base + q * stride + j, m = outputAdjoint(a, b, c, d)
                        store8(m.0, o); store8(m.1, o + 6 * stride); store8(m.2, o + 12 * stride)
                        store8(m.3, o + 18 * stride); store8(m.4, o + 24 * stride); store8(m.5, o + 30 * stride)
                    }
                    put(0, g0.0, g1.0, g2.0, g3.0); put(1, g0.1, g1.1, g2.1, g3.1); put(2, g0.2, g1.2, g2.2, g3.2)
                    put(3, g0.3, g1.3, g2.3, g3.3); put(4, g0.4, g1.4, g2.4, g3.4); put(5, g0.5, g1.5, g2.5, g3.5)
                }
            }
        }
    }

    /// Adjoint of transformInput: dV (36, C, ld) columns [col0, col0 + tiles) -> dX one sample (C, H, W) +=
    /// (or = with `overwrite`: every element of dX is written exactly once). scratch: (scratchRows * rowStride).
    /// Tile rows overlap by two: padded rows 4i and 4i + 1 get rows 0, 1 of tile row i and rows 4, 5 of tile row
    /// i - 1, carried in two rows; padded row p is image row p - 1.
    static func transformInputAdjoint(_ geo: WinogradGeometry, channels: Int, dV: UnsafePointer<Float>, ld: Int,
                                      col0: Int, dX: UnsafeMutablePointer<Float>,
                                      scratch: UnsafeMutablePointer<Float>, overwrite: Bool) {
        let h = geo.height, w = geo.width, pw = geo.planeW, rs = geo.rowStride, tw = geo.tilesW
        let q0 = scratch, q1 = q0 + rs, q2 = q1 + rs, q3 = q2 + rs, q4 = q3 + rs, q5 = q4 + rs
        let carry0 = q5 + rs, carry1 = carry0 + rs
        let out0 = carry1 + rs, out1 = out0 + rs, out2 = out1 + rs, out3 = out2 + rs
        let stride = channels * ld
        @inline(__always) func addRow(_ src: UnsafePointer<Float>, _ r: Int, _ xc: UnsafeMutablePointer<Float>) {
            addPaddedRow(src, row: r, height: h, width: w, into: xc, overwrite: overwrite)
        }
        for c in 0..<channels {
            let xc = dX + c * h * w
            carry0.update(repeating: 0, count: 2 * rs)
            for i in 0..<geo.tilesH {
                let base = dV + c * ld + col0 + i * tw
                columnAdjoint(base, stride, tw, q0)
                columnAdjoint(base + 6 * stride, stride, tw, q1)
                columnAdjoint(base + 12 * stride, stride, tw, q2)
                columnAdjoint(base + 18 * stride, stride, tw, q3)
                columnAdjoint(base + 24 * stride, stride, tw, q4)
                columnAdjoint(base + 30 * stride, stride, tw, q5)
                // rows of B dV B^T: dd_0 ..< dd_6 along the rows; dd4, dd5 overlap the next tile row
                slackLoop(pw) { k in
                    let dd = inputAdjoint(load8(q0 + k), load8(q1 + k), load8(q2 + k), load8(q3 + k), load8(q4 + k),
                                          load8(q5 + k))
                    store8(dd.0 + load8(carry0 + k), out0 + k); store8(dd.1 + load8(carry1 + k), out1 + k)
                    store8(dd.2, out2 + k); store8(dd.3, out3 + k)
                    store8(dd.4, carry0 + k); store8(dd.5, carry1 + k)
                }
                addRow(out0, 4 * i - 1, xc); addRow(out1, 4 * i, xc)
                addRow(out2, 4 * i + 1, xc); addRow(out3, 4 * i + 2, xc)
            }
            // padded row 4 tilesH (carry1's, 4 tilesH + 1, is past the image: 4 tilesH >= H)
            addRow(carry0, 4 * geo.tilesH - 1, xc)
        }
    }

    /// The B pass along a row, adjoint of columnTransform: six matrices' values of tile j -> a padded row where
    /// tiles overlap by two: out[4j + k] = dd_k(j) (+ dd_{k+4}(j - 1) for k < 2), out[4 tiles ..< 4 tiles + 2] the
    /// last tile's dd4, dd5.
    @inline(__always)
    private static func columnAdjoint(_ v: UnsafePointer<Float>, _ s: Int, _ tiles: Int,
                                      _ out: UnsafeMutablePointer<Float>) {
        let v0 = v, v1 = v + s, v2 = v + 2 * s, v3 = v + 3 * s, v4 = v + 4 * s, v5 = v + 5 * s
        // dd4, dd5 of the tile before the vector's first: carried from the last lane (tile 0 has none)
        var c4: Float = 0, c5: Float = 0
        var j = 0
        while j < tiles {
            let dd = inputAdjoint(load8(v0 + j), load8(v1 + j), load8(v2 + j), load8(v3 + j), load8(v4 + j),
                                  load8(v5 + j))
            let p4 = V8(c4, dd.4[0], dd.4[1], dd.4[2], dd.4[3], dd.4[4], dd.4[5], dd.4[6])
            let p5 = V8(c5, dd.5[0], dd.5[1], dd.5[2], dd.5[3], dd.5[4], dd.5[5], dd.5[6])
            storeInterleaved4(dd.0 + p4, dd.1 + p5, dd.2, dd.3, out + 4 * j)
            if tiles - j <= 8 {
                // the last tile's dd4, dd5, past the store above
                out[4 * tiles] = dd.4[tiles - 1 - j]; out[4 * tiles + 1] = dd.5[tiles - 1 - j]
            }
            c4 = dd.4[7]; c5 = dd.5[7]
            j += 8
        }
    }
}
