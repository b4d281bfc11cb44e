// DDPM diffusion (ARCHITECTURE.md "Diffusion"): the linear beta schedule computed in Double, q_sample, and the
// epsilon-prediction loss.
import Foundation
import Kernels

public struct NoiseSchedule: Sendable {
    public let steps: Int
    public let betas: [Double]
    public let alphasCumprod: [Double]

    public init(steps: Int = 1000, betaStart: Double = 1e-4, betaEnd: Double = 0.02) {
        self.steps = steps
        // torch.linspace in float64: start + i * (end - start) / (steps - 1)
        let b = (0..<steps).map { i in
            steps == 1 ? betaStart : betaStart + Double(i) * (betaEnd - betaStart) / Double(steps - 1)
        }
        var ac = [Double](repeating: 0, count: steps), prod = 1.0
        for i in 0..<steps { prod *= 1 - b[i]; ac[i] = prod }
        betas = b; alphasCumprod = ac
    }

    /// x_t = sqrt(ac_t) x0 + sqrt(1 - ac_t) eps, with ac_t rounded to Float first as the reference does.
    /// x0, eps, out: (N, C, H, W); t: (N).
    public func qSample(x0: UnsafePointer<Float>, eps: UnsafePointer<Float>, t: [Int], perSample: Int,
                        into out: UnsafeMutablePointer<Float>) {
        for (i, step) in t.enumerated() {
            let ac = Float(alphasCumprod[step])
            let a = ac.squareRoot(), b = (1 - ac).squareRoot()
            let base = i * perSample
            for j in 0..<perSample { out[base + j] = a * x0[base + j] + b * eps[base + j] }
        }
    }
}

/// What the network predicts: the noise, or v = sqrt(ac) eps - sqrt(1 - ac) x0 (Salimans & Ho 2022).
public enum PredictionType: String, Codable, Sendable, CaseIterable {
    case epsilon, v
    /// The weight-file metadata key that records it (absent: epsilon, as every earlier file).
    public static let metadataKey = "prediction_type"
}
