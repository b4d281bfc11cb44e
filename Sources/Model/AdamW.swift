// AdamW exactly as torch.optim.AdamW (single-tensor path): decoupled weight decay p *= 1 - lr wd, then Adam with
// bias correction. It runs over the flat trainable arena, so one loop updates every parameter.
import Foundation

public struct AdamWConfig: Codable, Sendable, Hashable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 1e-2
    enum CodingKeys: String, CodingKey { case beta1, beta2, eps, weightDecay = "weight_decay" }
    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 1e-2) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

public enum AdamW {
    /// One step (`step` counts from 1). params, grads, m, v: (count) flat arenas (or matching slices of them).
    public static func step(count: Int, params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                            m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                            lr: Float, step: Int, config c: AdamWConfig) {
        precondition(step >= 1, "AdamW steps count from 1")
        let bc1 = 1 - pow(Double(c.beta1), Double(step))
        let bc2 = 1 - pow(Double(c.beta2), Double(step))
        let stepSize = Float(Double(lr) / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let decay = 1 - lr * c.weightDecay
        let b1 = c.beta1, b2 = c.beta2, eps = c.eps
        for i in 0..<count {
            let g = grads[i]
            var p = params[i] * decay
            let mi = m[i] + (1 - b1) * (g - m[i])          // lerp, as torch
            let vi = v[i] * b2 + (1 - b2) * g * g
            let denom = vi.squareRoot() / bc2Sqrt + eps
            p -= stepSize * (mi / denom)
            m[i] = mi; v[i] = vi; params[i] = p
        }
    }
}
