// Vectorised exp / sigmoid on SIMD16<Float> and unaligned SIMD loads/stores. SiLU, fused GroupNorm+SiLU and the
// attention softmax spend most of their time in exp; glibc's scalar expf is several times slower than this
// polynomial, whose relative error (~2 ulp, Cephes expf coefficients) is far below the 1e-5 the model needs.

typealias Vec = SIMD16<Float>
let vecWidth = 16

@inline(__always)
func loadVec(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always)
func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// The first `count` (< 16) lanes from p, zeros elsewhere: lets loop tails reuse the vector code.
@inline(__always)
func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> Vec {
    var v = Vec(repeating: 0)
    for i in 0..<count { v[i] = p[i] }
    return v
}

@inline(__always)
func storePartial(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

/// e^x lane-wise. Range reduction x = n ln2 + r with n rounded to nearest via the 1.5 * 2^23 trick (its low
/// mantissa bits then hold n, so no float->int conversion is needed), then a degree-6 polynomial for e^r on
/// |r| <= ln2 / 2 and 2^n built in the exponent bits. Inputs are clamped to [-87.3, 88.3]: e^-87.3 is the
/// smallest normal float, e^88.3 is near the largest finite one.
@inline(__always)
func vexp(_ x: Vec) -> Vec {
    let magic: Float = 12_582_912  // 1.5 * 2^23
    // replacing(with:where:) lowers to compare + blend; clamped(lowerBound:upperBound:) is a scalar lane loop.
    let lo = Vec(repeating: -87.3), hi = Vec(repeating: 88.3)
    let xc = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
    let t = xc * Float(1.442_695_040_888_963_4) + magic
    let n = t - magic
    var r = xc - n * Float(0.693_359_375)
    r = r - n * Float(-2.121_944_4e-4)
    var p = Vec(repeating: 1.987_569_150_0e-4)
    p = p * r + Float(1.398_199_950_7e-3)
    p = p * r + Float(8.333_451_907_3e-3)
    p = p * r + Float(4.166_579_589_4e-2)
    p = p * r + Float(1.666_666_545_9e-1)
    p = p * r + Float(5.000_000_120_1e-1)
    p = p * (r * r) + r + Float(1)
    let bits = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(Vec(repeating: magic), to: SIMD16<Int32>.self)
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: Vec.self)
    return p * scale
}

public enum FastMath {
    /// x (count) -> y (count) = e^x with the vector polynomial; y may alias x.
    public static func exp(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + vecWidth <= count {
            storeVec(vexp(loadVec(x + i)), y + i)
            i += vecWidth
        }
        if i < count { storePartial(vexp(loadPartial(x + i, count - i)), y + i, count - i) }
    }

    /// e^x in Double by argument halving and a Taylor series: slow, simple and independent of libm and of the
    /// vector polynomial, so references built on it check the fast kernels rather than repeat them.
    public static func expNaive(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x > 709 { return .infinity }
        if x < -745 { return 0 }
        var halvings = 0
        var r = x
        while abs(r) > 0.5 { r /= 2; halvings += 1 }
        var term = 1.0, sum = 1.0
        for i in 1...20 {
            term *= r / Double(i)
            sum += term
        }
        for _ in 0..<halvings { sum *= sum }
        return sum
    }
}

/// 1 / (1 + e^-x) lane-wise.
@inline(__always)
func vsigmoid(_ x: Vec) -> Vec {
    Vec(repeating: 1) / (Vec(repeating: 1) + vexp(-x))
}

/// x sigmoid(x) = x / (1 + e^-x) lane-wise: one division, no multiply.
@inline(__always)
func vsilu(_ x: Vec) -> Vec {
    x / (Vec(repeating: 1) + vexp(-x))
}

/// Sum of the lanes in Double (the lanes each hold a partial sum; adding them in Double keeps the total careful).
@inline(__always)
func laneSum(_ v: Vec) -> Double {
    var s = 0.0
    for i in 0..<vecWidth { s += Double(v[i]) }
    return s
}

/// Eight Floats widened to Double lanes: reductions that must be accurate (means, losses) accumulate in these.
typealias DVec = SIMD8<Double>

@inline(__always)
func loadWide(_ p: UnsafePointer<Float>) -> DVec {
    DVec(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self))
}
