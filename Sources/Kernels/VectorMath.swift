// SIMD16<Float> loads/stores and lane sums for the Swift kernels' reductions, and exp: the fast one is CKernels'
// vector polynomial (glibc's scalar expf is several times slower; its relative error, ~2 ulp with Cephes expf
// coefficients, is far below the 1e-5 the model needs), the naive one a Double series the references use.
import CKernels

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

public enum FastMath {
    /// x (count) -> y (count) = e^x with CKernels' vector polynomial; y may alias x.
    public static func exp(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        ck_exp(count, x, y)
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
