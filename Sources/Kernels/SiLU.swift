// SiLU (x * sigmoid(x)), the activation after every GroupNorm and in the time embedding, forward and backward.

public enum SiLU {
    /// x (count) -> y (count) = x * sigmoid(x); y may alias x.
    public static func forward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
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
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
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

    /// Reference: scalar Double loops over FastMath.expNaive, independent of the vector polynomial.
    public static func forwardNaive(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let v = Double(x[i])
            y[i] = Float(v / (1 + FastMath.expNaive(-v)))
        }
    }

    public static func backwardNaive(count: Int, x: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                     dX: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let v = Double(x[i])
            let s = 1 / (1 + FastMath.expNaive(-v))
            dX[i] += Float(Double(dY[i]) * s * (1 + v * (1 - s)))
        }
    }
}
