// Whole-buffer helpers the trainer uses between layers (residual adds, gradient clipping norms, NaN guards).
// The loops are plain and contiguous so the compiler vectorises them; reductions keep SIMD partial sums so
// they neither serialise on one accumulator nor lose precision over millions of elements.

public enum Elementwise {
    /// x (count) = 0
    public static func zero(_ x: UnsafeMutablePointer<Float>, count: Int) {
        x.update(repeating: 0, count: count)
    }

    /// y (count) = x (count)
    public static func copy(count: Int, from x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>) {
        y.update(from: x, count: count)
    }

    /// y (count) = a + b; y may alias a or b (each element is read before it is written).
    public static func add(count: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           into y: UnsafeMutablePointer<Float>) {
        for i in 0..<count { y[i] = a[i] + b[i] }
    }

    /// y (count) += alpha * x (count)
    public static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        for i in 0..<count { y[i] += alpha * x[i] }
    }

    /// x (count) *= alpha
    public static func scale(count: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        for i in 0..<count { x[i] *= alpha }
    }

    /// sum of x^2 over x (count), accumulated in Double lanes (gradient norms over millions of elements).
    public static func sumOfSquares(count: Int, _ x: UnsafePointer<Float>) -> Double {
        var acc0 = DVec(repeating: 0), acc1 = DVec(repeating: 0)
        var i = 0
        while i + 16 <= count {
            let v0 = loadWide(x + i), v1 = loadWide(x + i + 8)
            acc0 += v0 * v0
            acc1 += v1 * v1
            i += 16
        }
        var total = (acc0 + acc1).sum()
        while i < count { total += Double(x[i]) * Double(x[i]); i += 1 }
        return total
    }

    /// true when no element of x (count) is NaN or infinite.
    public static func allFinite(count: Int, _ x: UnsafePointer<Float>) -> Bool {
        // x * 0 is 0 for finite x and NaN for inf/NaN, so one test of the lane sums covers a whole block.
        var start = 0
        let block = 4096
        while start < count {
            let end = min(count, start + block)
            var acc = Vec(repeating: 0)
            var i = start
            while i + vecWidth <= end {
                acc += loadVec(x + i) * 0
                i += vecWidth
            }
            var tail: Float = 0
            while i < end { tail += x[i] * 0; i += 1 }
            if !(acc.sum() + tail).isFinite { return false }
            start = end
        }
        return true
    }
}
