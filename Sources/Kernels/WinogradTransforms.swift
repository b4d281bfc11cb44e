// The four tile transforms of Winograd F(2x2, 3x3) and their adjoints, on one sample's planes (F(4x4)'s, in
// WinogradF4Transforms.swift, follow the same layout and loop conventions and share the vector helpers and the
// tile geometry here). A 4x4 input tile d (stride 2, overlapping by 2) becomes V = B^T d B; a 3x3 filter g becomes
// U = G g G^T; the 16 products M = U V (summed over input channels by the GEMMs in Winograd.swift) give a 2x2
// output tile Y = A^T M A. With
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1]
// backward uses the exact adjoints (dM = A dY A^T, dd = B dV B^T, dg = G^T dU G), so the gradients are those of
// the function forward computes. Element e = 4 a + b of a transformed tile lives in matrix e of a (16, rows, ld)
// buffer, column = tile index. The loops are written with explicit 8-lane vectors (the many row pointers would
// otherwise defeat LLVM's alias checks and leave them scalar): 8 tiles at a time, the stride-2 tile picks as
// even/odd lane splits of 16-lane loads. The loops along tiles run in whole vectors past the last tile: the
// transformed buffers' rows (ld) and the scratch rows carry slack for that, and the extra values land in slack or
// in columns a later tile row / sample overwrites (callers transform samples in increasing column order). Loops
// over image rows, which must not read or write past the row, finish with a 4-lane step and scalars.

typealias V8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> V8 {
    UnsafeRawPointer(p).loadUnaligned(as: V8.self)
}

@inline(__always) func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
}

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

/// (a0, b0, a1, b1, ...): two rows of tile values back into pixel order.
@inline(__always) func storeInterleaved(_ a: V8, _ b: V8, _ p: UnsafeMutablePointer<Float>) {
    let v = SIMD16<Float>(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3],
                          a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Up to eight 3x3 filters, `stride` floats apart (9: consecutive in (Cout, Cin, 3, 3) order; 9 Cin: one input
/// channel's filters for consecutive output channels), as vectors, lane j = filter j, so the weight transforms
/// compute eight filters per instruction and write each transformed value as one vector store.
/// Lanes past `count` hold zeros and are never stored.
struct FilterLanes {
    let count: Int
    private let values: (V8, V8, V8, V8, V8, V8, V8, V8, V8)

    @inline(__always) init(_ g: UnsafePointer<Float>, _ count: Int, stride s: Int = 9) {
        self.count = count
        @inline(__always) func lane(_ k: Int) -> V8 {
            var v = V8()
            if count == 8 {
                v = V8(g[k], g[s + k], g[2 * s + k], g[3 * s + k], g[4 * s + k], g[5 * s + k], g[6 * s + k],
                       g[7 * s + k])
            } else {
                for j in 0..<count { v[j] = g[s * j + k] }
            }
            return v
        }
        values = (lane(0), lane(1), lane(2), lane(3), lane(4), lane(5), lane(6), lane(7), lane(8))
    }

    /// Value k (0 ..< 9, row-major in the 3x3 filter) of every filter.
    @inline(__always) subscript(_ k: Int) -> V8 {
        switch k {
        case 0: return values.0
        case 1: return values.1
        case 2: return values.2
        case 3: return values.3
        case 4: return values.4
        case 5: return values.5
        case 6: return values.6
        case 7: return values.7
        default: return values.8
        }
    }

    /// The first `count` lanes of v to p, p + 1, ... (one output per filter).
    @inline(__always) func put(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
        if count == 8 { store8(v, p); return }
        for j in 0..<count { p[j] = v[j] }
    }
}

/// The filters of weight (Cout, Cin, 3, 3) in groups of up to eight that sit side by side in a plane of U:
/// (Cout, Cin) order, or with `transposed` (Cin, Cout), the forward's layout (Winograd.forward). body gets the group
/// and its first filter's position in the plane.
@inline(__always) func forEachFilterGroup(outChannels: Int, inChannels: Int, weight: UnsafePointer<Float>,
                                          transposed: Bool, _ body: (FilterLanes, Int) -> Void) {
    guard transposed else {
        let plane = outChannels * inChannels
        var f = 0
        while f < plane {
            let n = min(8, plane - f)
            body(FilterLanes(weight + 9 * f, n), f)
            f += n
        }
        return
    }
    for ci in 0..<inChannels {
        var co = 0
        while co < outChannels {
            let n = min(8, outChannels - co)
            body(FilterLanes(weight + 9 * (co * inChannels + ci), n, stride: 9 * inChannels), ci * outChannels + co)
            co += n
        }
    }
}

typealias V4 = SIMD4<Float>

@inline(__always) func load<V: SIMD>(_ p: UnsafePointer<Float>, _: V.Type) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

@inline(__always) func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// Image rows of length `count`, combined lane-wise: 8 lanes, then one step of 4, then scalars (exact bounds).
@inline(__always) func rowLoop(_ count: Int, _ body8: (Int) -> Void, _ body4: (Int) -> Void,
                                       _ body1: (Int) -> Void) {
    var k = 0
    while k + 8 <= count { body8(k); k += 8 }
    if k + 4 <= count { body4(k); k += 4 }
    while k < count { body1(k); k += 1 }
}

/// Scratch rows: 8 lanes at a time, past `count` into the row's slack.
@inline(__always) func slackLoop(_ count: Int, _ body8: (Int) -> Void) {
    var k = 0
    while k < count { body8(k); k += 8 }
}

/// Channel plane p (count floats) as a transform reads it: itself, or (bf16) rounded into `rounding`, which stays
/// in L1 for the transform's reads.
@inline(__always) func roundedPlane(_ p: UnsafePointer<Float>, count: Int, _ rounding: UnsafeMutablePointer<Float>?)
    -> UnsafePointer<Float> {
    guard let rounding else { return p }
    BF16Buffer.round(count: count, p, into: rounding)
    return UnsafePointer(rounding)
}

/// How an input transform reads channel c of one sample's x: as it is, or prepared plane by plane into `scratch`
/// (H * W floats, which stays in L1): normalised (GroupNorm+SiLU, `norm`, for sample `sample` of its statistics)
/// and/or rounded to bf16 (`round`), in that order - the order in which the unfused path computes them.
struct PlaneInput {
    var scratch: UnsafeMutablePointer<Float>?
    var norm: NormalizedInput?
    var sample = 0
    var round = false

    @inline(__always) func plane(_ p: UnsafePointer<Float>, channel c: Int, count: Int) -> UnsafePointer<Float> {
        guard let scratch, norm != nil || round else { return p }
        if let norm {
            norm.plane(sample: sample, channel: c, p, into: scratch)
            if round { BF16Buffer.round(count: count, scratch, into: scratch) }
        } else {
            BF16Buffer.round(count: count, p, into: scratch)
        }
        return UnsafePointer(scratch)
    }
}

/// A padded row (pixel column k at k + 1) into image row r of one channel plane xc (H, W): added, or copied with
/// `overwrite`; padded rows outside the image are dropped. The input-gradient transforms' last step.
@inline(__always) func addPaddedRow(_ src: UnsafePointer<Float>, row r: Int, height h: Int, width w: Int,
                                    into xc: UnsafeMutablePointer<Float>, overwrite: Bool) {
    guard r >= 0 && r < h else { return }
    let s = src + 1, dst = xc + r * w
    if overwrite {
        dst.update(from: s, count: w)
        return
    }
    rowLoop(w, { k in store8(load8(dst + k) + load8(s + k), dst + k) },
            { k in store(load(dst + k, V4.self) + load(s + k, V4.self), dst + k) }, { k in dst[k] += s[k] })
}

/// One sample's tile grid for a 3x3, stride 1, pad 1 convolution by F(tile x tile, 3x3): tiles cover the output
/// (rounded up to a multiple of `tile`), input tiles are tile + 2 wide and overlap by 2.
struct WinogradGeometry {
    let height, width, tile: Int
    let tilesH, tilesW: Int
    /// Width of the zero-padded input plane the tiles cover (tile * tilesW + 2): pixel column w sits at w + 1.
    let planeW: Int

    init(height: Int, width: Int, tile: Int) {
        self.height = height; self.width = width; self.tile = tile
        tilesH = (height + tile - 1) / tile; tilesW = (width + tile - 1) / tile
        planeW = tile * tilesW + 2
    }

    var tiles: Int { tilesH * tilesW }
    /// Scratch rows: the padded width plus slack for whole-vector loops over 8 tiles (F(4x4) reads 32 + 4 lanes
    /// from 4 (tilesW + 7), F(2x2) 16 + 2 from 2 (tilesW + 7)).
    var rowStride: Int { planeW + 72 }
    /// Extra columns the transformed buffers' rows need after the last tile (vector loops run up to 7 tiles on).
    static let columnSlack = 8
}

enum WinogradF2: WinogradTiles {
    static let tile = 2
    /// Tile rows the input transform combines before transforming their columns (see transformInput).
    static let inputBlock = 4
    /// The input transform's zero row and 4 rows per tile row of its block (the most any transform uses; the
    /// input adjoint takes eight).
    static let scratchRows = 1 + 4 * inputBlock

    /// weight (Cout, Cin, 3, 3) -> u (16, Cout, Cin) (or (16, Cin, Cout) with `transposed`) = G g G^T per filter,
    /// eight filters per vector (FilterLanes): stores of one value per filter to 16 planes were 1.6% of a training
    /// step (perf, mnist).
    static func transformWeights(outChannels: Int, inChannels: Int, weight: UnsafePointer<Float>,
                                 u: UnsafeMutablePointer<Float>, transposed: Bool) {
        let plane = outChannels * inChannels
        forEachFilterGroup(outChannels: outChannels, inChannels: inChannels, weight: weight,
                           transposed: transposed) { g, f in
            // G g, one row (3 values) at a time, then (G g) G^T
            for a in 0..<4 {
                let r0: V8, r1: V8, r2: V8
                switch a {
                case 0: r0 = g[0]; r1 = g[1]; r2 = g[2]
                case 1: r0 = (g[0] + g[3] + g[6]) * 0.5; r1 = (g[1] + g[4] + g[7]) * 0.5; r2 = (g[2] + g[5] + g[8]) * 0.5
                case 2: r0 = (g[0] - g[3] + g[6]) * 0.5; r1 = (g[1] - g[4] + g[7]) * 0.5; r2 = (g[2] - g[5] + g[8]) * 0.5
                default: r0 = g[6]; r1 = g[7]; r2 = g[8]
                }
                let o = u + 4 * a * plane + f
                g.put(r0, o); g.put((r0 + r1 + r2) * 0.5, o + plane)
                g.put((r0 - r1 + r2) * 0.5, o + 2 * plane); g.put(r2, o + 3 * plane)
            }
        }
    }

    /// Adjoint of transformWeights: dWeight (Cout, Cin, 3, 3) += G^T dU G, dU (16, Cout, Cin).
    static func addWeightGradient(outChannels: Int, inChannels: Int, dU: UnsafePointer<Float>,
                                  dWeight: UnsafeMutablePointer<Float>) {
        let plane = outChannels * inChannels
        for f in 0..<plane {
            // t = dU G (4 rows of 3), then dWeight += G^T t
            var t0 = SIMD4<Float>(), t1 = SIMD4<Float>(), t2 = SIMD4<Float>()  // columns of t, lanes = rows a
            for a in 0..<4 {
                let q0 = dU[(4 * a) * plane + f], q1 = dU[(4 * a + 1) * plane + f]
                let q2 = dU[(4 * a + 2) * plane + f], q3 = dU[(4 * a + 3) * plane + f]
                t0[a] = q0 + (q1 + q2) * 0.5
                t1[a] = (q1 - q2) * 0.5
                t2[a] = (q1 + q2) * 0.5 + q3
            }
            let g = dWeight + 9 * f
            @inline(__always) func addColumn(_ j: Int, _ t: SIMD4<Float>) {
                g[j] += t[0] + (t[1] + t[2]) * 0.5
                g[3 + j] += (t[1] - t[2]) * 0.5
                g[6 + j] += (t[1] + t[2]) * 0.5 + t[3]
            }
            addColumn(0, t0); addColumn(1, t1); addColumn(2, t2)
        }
    }

    /// x: one sample (C, H, W) -> v (16, C, ld) columns [col0, col0 + tiles). scratch: (scratchRows * geo.rowStride).
    /// The zero padding is never materialised: rows outside the image read a zero row, and the row
    /// combinations are written one column in, between zero borders set once.
    static func transformInput(_ geo: WinogradGeometry, channels: Int, x: UnsafePointer<Float>,
                               v: UnsafeMutablePointer<Float>, ld: Int, col0: Int,
                               scratch: UnsafeMutablePointer<Float>, input: PlaneInput) {
        let h = geo.height, w = geo.width, rs = geo.rowStride, tw = geo.tilesW
        // Rows pass for `inputBlock` tile rows, then their column passes: the column pass's loads (16 floats at
        // 2j and 2j + 2) straddle the row pass's stores (one column in), so read right after them they cannot be
        // forwarded from the store buffer and stall; a block later the stores have reached L1 (perf: two loads
        // held 43% of this function's samples).
        let zero = scratch, block = scratch + rs
        let stride = channels * ld
        scratch.update(repeating: 0, count: (1 + 4 * inputBlock) * rs)
        for c in 0..<channels {
            let xc = input.plane(x + c * h * w, channel: c, count: h * w)
            @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> { r >= 0 && r < h ? xc + r * w : UnsafePointer(zero) }
            var i0 = 0
            while i0 < geo.tilesH {
                let count = min(inputBlock, geo.tilesH - i0)
                for b in 0..<count {
                    let i = i0 + b, t0 = block + 4 * b * rs
                    // padded rows 2i ..< 2i + 4 are image rows 2i - 1 ..< 2i + 3
                    let r0 = row(2 * i - 1), r1 = row(2 * i), r2 = row(2 * i + 1), r3 = row(2 * i + 2)
                    let u0 = t0 + 1, u1 = u0 + rs, u2 = u1 + rs, u3 = u2 + rs
                    @inline(__always) func rows<V: SIMD>(_ k: Int, _ type: V.Type) where V.Scalar == Float {
                        let a = load(r0 + k, type), b = load(r1 + k, type), c = load(r2 + k, type)
                        let d = load(r3 + k, type)
                        store(a - c, u0 + k); store(b + c, u1 + k); store(c - b, u2 + k); store(b - d, u3 + k)
                    }
                    rowLoop(w, { rows($0, V8.self) }, { rows($0, V4.self) }, { k in
                        u0[k] = r0[k] - r2[k]; u1[k] = r1[k] + r2[k]; u2[k] = r2[k] - r1[k]; u3[k] = r1[k] - r3[k]
                    })
                }
                for b in 0..<count {
                    let t0 = block + 4 * b * rs, base = v + c * ld + col0 + (i0 + b) * tw
                    columnTransform(t0, base, stride, tw)
                    columnTransform(t0 + rs, base + 4 * stride, stride, tw)
                    columnTransform(t0 + 2 * rs, base + 8 * stride, stride, tw)
                    columnTransform(t0 + 3 * rs, base + 12 * stride, stride, tw)
                }
                i0 += count
            }
        }
    }

    /// The B^T pass along a row: tile j's four values t[2j ..< 2j+4] -> out[j], out[j + s], ... (4 matrices).
    @inline(__always)
    private static func columnTransform(_ t: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ s: Int,
                                        _ tiles: Int) {
        let o0 = out, o1 = out + s, o2 = out + 2 * s, o3 = out + 3 * s
        slackLoop(tiles) { j in
            let lo = load16(t + 2 * j), hi = load16(t + 2 * j + 2)
            let d0 = lo.evenHalf, d1 = lo.oddHalf, d2 = hi.evenHalf, d3 = hi.oddHalf
            store8(d0 - d2, o0 + j); store8(d1 + d2, o1 + j); store8(d2 - d1, o2 + j); store8(d1 - d3, o3 + j)
        }
    }

    /// m (16, C, ld) columns [col0, col0 + tiles) -> y: one sample (C, H, W) = A^T M A + bias + sampleBias,
    /// overwritten; bias and sampleBias (this sample's row) are (C) or nil. scratch: (scratchRows * geo.rowStride).
    static func transformOutput(_ geo: WinogradGeometry, channels: Int, m: UnsafePointer<Float>, ld: Int, col0: Int,
                                bias: UnsafePointer<Float>?, sampleBias: UnsafePointer<Float>?,
                                y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let h = geo.height, w = geo.width, tw = geo.tilesW, rs = geo.rowStride
        let row0 = scratch, row1 = scratch + rs
        let stride = channels * ld
        for c in 0..<channels {
            let b = (bias?[c] ?? 0) + (sampleBias?[c] ?? 0)
            let yc = y + c * h * w
            for i in 0..<geo.tilesH {
                let base = m + c * ld + col0 + i * tw
                // m_a = the 4 matrices of tile row a; s = m_0 + m_1 + m_2, d = m_1 - m_2 - m_3 per column q, then
                // the same combination along q gives the 2x2 outputs.
                let m0 = base, m1 = m0 + 4 * stride, m2 = m0 + 8 * stride, m3 = m0 + 12 * stride
                let bv = V8(repeating: b)
                slackLoop(tw) { j in
                    @inline(__always) func column(_ q: Int) -> (V8, V8) {
                        let o = q * stride + j
                        let x0 = load8(m0 + o), x1 = load8(m1 + o), x2 = load8(m2 + o), x3 = load8(m3 + o)
                        return (x0 + x1 + x2, x1 - x2 - x3)
                    }
                    let (s0, d0) = column(0), (s1, d1) = column(1), (s2, d2) = column(2), (s3, d3) = column(3)
                    storeInterleaved(s0 + s1 + s2 + bv, s1 - s2 - s3 + bv, row0 + 2 * j)
                    storeInterleaved(d0 + d1 + d2 + bv, d1 - d2 - d3 + bv, row1 + 2 * j)
                }
                (yc + 2 * i * w).update(from: row0, count: w)
                if 2 * i + 1 < h { (yc + (2 * i + 1) * w).update(from: row1, count: w) }
            }
        }
    }

    /// Adjoint of transformOutput (without bias): dY one sample (C, H, W) -> dM (16, C, ld) columns
    /// [col0, col0 + tiles), overwritten. scratch: (scratchRows * geo.rowStride).
    static func transformOutputAdjoint(_ geo: WinogradGeometry, channels: Int, dY: UnsafePointer<Float>,
                                       dM: UnsafeMutablePointer<Float>, ld: Int, col0: Int,
                                       scratch: UnsafeMutablePointer<Float>,
                                       rounding: UnsafeMutablePointer<Float>?) {
        let h = geo.height, w = geo.width, tw = geo.tilesW, rs = geo.rowStride
        let row0 = scratch, row1 = scratch + rs
        let stride = channels * ld
        // Columns past the image (odd widths, vector slack) stay zero.
        scratch.update(repeating: 0, count: 2 * rs)
        for c in 0..<channels {
            let yc = roundedPlane(dY + c * h * w, count: h * w, rounding)
            for i in 0..<geo.tilesH {
                row0.update(from: yc + 2 * i * w, count: w)
                if 2 * i + 1 < h {
                    row1.update(from: yc + (2 * i + 1) * w, count: w)
                } else {
                    row1.update(repeating: 0, count: w)
                }
                let base = dM + c * ld + col0 + i * tw
                // dy tile (a b; c d): g0 = (a, a + b, a - b, -b), g1 = (c, c + d, c - d, -d) along the columns q,
                // then matrix rows g0, g0 + g1, g0 - g1, -g1.
                slackLoop(tw) { j in
                    @inline(__always) func put(_ q: Int, _ g0: V8, _ g1: V8) {
                        let o = base + q * stride + j
                        store8(g0, o); store8(g0 + g1, o + 4 * stride); store8(g0 - g1, o + 8 * stride)
                        store8(-g1, o + 12 * stride)
                    }
                    let top = load16(row0 + 2 * j), bottom = load16(row1 + 2 * j)
                    let a = top.evenHalf, b = top.oddHalf, cc = bottom.evenHalf, d = bottom.oddHalf
                    put(0, a, cc); put(1, a + b, cc + d); put(2, a - b, cc - d); put(3, -b, -d)
                }
            }
        }
    }

    /// Adjoint of transformInput: dV (16, C, ld) columns [col0, col0 + tiles) -> dX one sample (C, H, W) +=
    /// (or = with `overwrite`: every element of dX is written exactly once).
    /// scratch: (scratchRows * geo.rowStride). Tile rows overlap by two: padded row 2i gets rows 0 and 1 of tile row i and
    /// rows 2 and 3 of tile row i - 1, carried in two rows; padded row p is image row p - 1.
    static func transformInputAdjoint(_ geo: WinogradGeometry, channels: Int, dV: UnsafePointer<Float>, ld: Int,
                                      col0: Int, dX: UnsafeMutablePointer<Float>,
                                      scratch: UnsafeMutablePointer<Float>, overwrite: Bool = false) {
        let h = geo.height, w = geo.width, pw = geo.planeW, rs = geo.rowStride, tw = geo.tilesW
        let q0 = scratch, q1 = q0 + rs, q2 = q1 + rs, q3 = q2 + rs
        let carry2 = q3 + rs, carry3 = carry2 + rs, even = carry3 + rs, odd = even + rs
        let stride = channels * ld
        @inline(__always) func addRow(_ src: UnsafePointer<Float>, _ r: Int, _ xc: UnsafeMutablePointer<Float>) {
            addPaddedRow(src, row: r, height: h, width: w, into: xc, overwrite: overwrite)
        }
        for c in 0..<channels {
            let xc = dX + c * h * w
            carry2.update(repeating: 0, count: 2 * rs)
            for i in 0..<geo.tilesH {
                let base = dV + c * ld + col0 + i * tw
                columnAdjoint(base, stride, tw, q0)
                columnAdjoint(base + 4 * stride, stride, tw, q1)
                columnAdjoint(base + 8 * stride, stride, tw, q2)
                columnAdjoint(base + 12 * stride, stride, tw, q3)
                // rows of B dV B^T: dd0 = h0, dd1 = h1 - h2 + h3, dd2 = h1 + h2 - h0, dd3 = -h3
                slackLoop(pw) { k in
                    let a = load8(q0 + k), b = load8(q1 + k), c = load8(q2 + k), d = load8(q3 + k)
                    store8(a + load8(carry2 + k), even + k)
                    store8((b - c + d) + load8(carry3 + k), odd + k)
                    store8(b + c - a, carry2 + k)
                    store8(-d, carry3 + k)
                }
                addRow(even, 2 * i - 1, xc)
                addRow(odd, 2 * i, xc)
            }
            addRow(carry2, 2 * geo.tilesH - 1, xc)
        }
    }

    /// The B pass along a row, adjoint of columnTransform: four matrices' values of tile j -> a padded row where
    /// tiles overlap by two: out[2j] = h0(j) + h2(j-1), out[2j+1] = h1(j) + h3(j-1), with
    /// h0 = v0, h1 = v1 - v2 + v3, h2 = v1 + v2 - v0, h3 = -v3 (no loop-carried value, so it vectorises).
    @inline(__always)
    private static func columnAdjoint(_ v: UnsafePointer<Float>, _ s: Int, _ tiles: Int,
                                      _ out: UnsafeMutablePointer<Float>) {
        let v0 = v, v1 = v + s, v2 = v + 2 * s, v3 = v + 3 * s
        // tile 0 has no left neighbour: its lanes use a zero "previous tile", then whole vectors run on
        var j = 0
        while j < tiles {
            let a = load8(v0 + j), b = load8(v1 + j), c = load8(v2 + j), d = load8(v3 + j)
            var pa = V8(), pb = V8(), pc = V8(), pd = V8()
            if j == 0 {
                for l in 1..<8 { pa[l] = v0[l - 1]; pb[l] = v1[l - 1]; pc[l] = v2[l - 1]; pd[l] = v3[l - 1] }
            } else {
                pa = load8(v0 + j - 1); pb = load8(v1 + j - 1); pc = load8(v2 + j - 1); pd = load8(v3 + j - 1)
            }
            storeInterleaved(a + (pb + pc - pa), (b - c + d) - pd, out + 2 * j)
            j += 8
        }
        let last = tiles - 1
        out[2 * tiles] = v1[last] + v2[last] - v0[last]
        out[2 * tiles + 1] = -v3[last]
    }
}
