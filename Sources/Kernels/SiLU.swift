// SiLU (x * sigmoid(x)), the activation after every GroupNorm and in the time embedding, forward and backward.

public enum SiLU {
    /// x (count) -> y (count) = x * sigmoid(x); y may alias x.
    public static func forward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + vecWidth <= count {
            let v = loadVec(x + i)
            storeVec(v * vsigmoid(v), y + i)
            i += vecWidth
        }
        if i < count {
            let v = loadPartial(x + i, count - i)
            storePartial(v * vsigmoid(v), y + i, count - i)
        }
    }

    /// dX (count) += dY * silu'(x), silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x).
    public static func backward(count: Int, x: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + vecWidth <= count {
            let v = loadVec(x + i)
            storeVec(loadVec(dX + i) + loadVec(dY + i) * siluDerivative(v), dX + i)
            i += vecWidth
        }
        if i < count {
            let n = count - i
            let v = loadPartial(x + i, n)
            storePartial(loadPartial(dX + i, n) + loadPartial(dY + i, n) * siluDerivative(v), dX + i, n)
        }
    }

    /// Reference: scalar loops over Foundation-free exp via Double, independent of the vector polynomial.
    public static func forwardNaive(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let v = Double(x[i])
            y[i] = Float(v / (1 + naiveExp(-v)))
        }
    }

    public static func backwardNaive(count: Int, x: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                     dX: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let v = Double(x[i])
            let s = 1 / (1 + naiveExp(-v))
            dX[i] += Float(Double(dY[i]) * s * (1 + v * (1 - s)))
        }
    }
}

/// e^x in Double by argument halving and a Taylor series: slow, simple and independent of libm and of `vexp`,
/// so references built on it check the fast kernels rather than repeat them.
func naiveExp(_ x: Double) -> Double {
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
