// SiLU (x * sigmoid(x)), the activation after every GroupNorm and in the time embedding, forward and backward.
// The fast loops are in CKernels (per instruction set); the Double references are here.
import CKernels

public enum SiLU {
    /// x (count) -> y (count) = x * sigmoid(x); y may alias x.
    public static func forward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        ck_silu_forward(count, x, y)
    }

    /// dX (count) += dY * silu'(x), silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x).
    public static func backward(count: Int, x: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.elementwise)
        defer { PhaseProfiler.shared.leave(phase) }
        ck_silu_backward(count, x, dY, dX)
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
