// The training loss: mean squared error between predicted and true noise over every element of the batch.

public enum MSELoss {
    /// mean over count of (prediction - target)^2, prediction/target: (count). Accumulated in Double.
    public static func forward(count: Int, prediction: UnsafePointer<Float>, target: UnsafePointer<Float>) -> Float {
        precondition(count > 0, "MSELoss over an empty tensor")
        // differences in Float (exact when prediction and target are close), squares and sums in Double lanes
        var acc0 = DVec(repeating: 0), acc1 = DVec(repeating: 0)
        var i = 0
        while i + 16 <= count {
            let d0 = loadWide(prediction + i) - loadWide(target + i)
            let d1 = loadWide(prediction + i + 8) - loadWide(target + i + 8)
            acc0 += d0 * d0
            acc1 += d1 * d1
            i += 16
        }
        var total = (acc0 + acc1).sum()
        while i < count {
            let d = Double(prediction[i]) - Double(target[i])
            total += d * d
            i += 1
        }
        return Float(total / Double(count))
    }

    /// dPrediction (count) += scale * 2 (prediction - target) / count
    public static func backward(count: Int, prediction: UnsafePointer<Float>, target: UnsafePointer<Float>,
                                scale: Float, dPrediction: UnsafeMutablePointer<Float>) {
        let f = Float(2 * Double(scale) / Double(count))
        for i in 0..<count { dPrediction[i] += f * (prediction[i] - target[i]) }
    }
}
