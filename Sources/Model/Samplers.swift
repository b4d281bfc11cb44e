// DDPM ancestral and DDIM (eta 0) sampling. The network is a closure so the same loop serves the base model,
// a controlled model (one or more ControlNets, guidance windows) and classifier-free guidance.
import Foundation
import Randomness

public enum SamplerKind: String, Sendable, CaseIterable, Codable { case ddpm, ddim }

public struct SamplerSettings: Sendable {
    public var kind: SamplerKind
    /// DDIM steps (ignored by DDPM, which visits all T).
    public var steps: Int
    public var seed: UInt64
    /// Clamp the predicted x0 to [-1, 1] at every step (images live there).
    public var clipDenoised: Bool
    /// What the network's output is: the noise, or v (converted to the noise: eps = sqrt(ac) v + sqrt(1 - ac) x_t).
    public var prediction: PredictionType = .epsilon
    public init(kind: SamplerKind = .ddim, steps: Int = 50, seed: UInt64 = 0, clipDenoised: Bool = true) {
        self.kind = kind; self.steps = steps; self.seed = seed; self.clipDenoised = clipDenoised
    }
}

/// Where a denoising call sits: the timestep and the fraction of the trajectory done before/after it (for
/// ControlNet guidance windows: control applies when start <= before and after <= end).
public struct SamplingPoint: Sendable {
    public let t: Int
    public let index: Int
    public let total: Int
    public var fractionBefore: Double { Double(index) / Double(total) }
    public var fractionAfter: Double { Double(index + 1) / Double(total) }
}

public struct DiffusionSampler: Sendable {
    public let schedule: NoiseSchedule
    public init(schedule: NoiseSchedule = NoiseSchedule()) { self.schedule = schedule }

    /// Timesteps visited, from noisiest to cleanest.
    public func timesteps(_ s: SamplerSettings) -> [Int] {
        switch s.kind {
        case .ddpm: return Array((0..<schedule.steps).reversed())
        case .ddim:
            let n = max(1, min(s.steps, schedule.steps))
            let stride = schedule.steps / n
            return (0..<n).map { $0 * stride }.reversed()
        }
    }

    /// Draws `count` samples of `perSample` floats (C*H*W). `denoise(x, point)` returns the predicted noise for
    /// x: (count, C, H, W) at point.t; it must stay valid until the next call. Sample i's noise depends only on
    /// (seed, firstIndex + i), not on the batch it is drawn in.
    /// `firstIndex` numbers the samples across batches: sample i of this call is sample firstIndex + i overall.
    public func sample(count: Int, perSample: Int, settings s: SamplerSettings, firstIndex: Int = 0,
                       denoise: (UnsafeMutablePointer<Float>, SamplingPoint) -> UnsafePointer<Float>) -> [Float] {
        var x = [Float](repeating: 0, count: count * perSample)
        var streams = (0..<count).map { RandomStream(s.seed, RandomPurpose.sampling.rawValue, UInt64(firstIndex + $0)) }
        for i in 0..<count { for j in 0..<perSample { x[i * perSample + j] = streams[i].normal() } }
        let ts = timesteps(s)
        let ac = schedule.alphasCumprod
        for (index, t) in ts.enumerated() {
            let point = SamplingPoint(t: t, index: index, total: ts.count)
            let prevT = index + 1 < ts.count ? ts[index + 1] : -1
            x.withUnsafeMutableBufferPointer { xb in
                let eps = denoise(xb.baseAddress!, point)
                let acT = ac[t], acPrev = prevT >= 0 ? ac[prevT] : 1.0
                for k in 0..<(count * perSample) {
                    let xt = Double(xb[k])
                    let e = s.prediction == .v ? acT.squareRoot() * Double(eps[k]) + (1 - acT).squareRoot() * xt
                                               : Double(eps[k])
                    var x0 = (xt - (1 - acT).squareRoot() * e) / acT.squareRoot()
                    if s.clipDenoised { x0 = min(1, max(-1, x0)) }
                    switch s.kind {
                    case .ddim:
                        // eta = 0: deterministic; re-derive eps from the (possibly clipped) x0.
                        let epsHat = s.clipDenoised ? (xt - acT.squareRoot() * x0) / (1 - acT).squareRoot() : e
                        xb[k] = Float(acPrev.squareRoot() * x0 + (1 - acPrev).squareRoot() * epsHat)
                    case .ddpm:
                        // Posterior q(x_{t-1} | x_t, x0): mean from x0 and x_t, variance beta~_t.
                        let beta = schedule.betas[t], alpha = 1 - beta
                        let c0 = beta * acPrev.squareRoot() / (1 - acT)
                        let ct = (1 - acPrev) * alpha.squareRoot() / (1 - acT)
                        xb[k] = Float(c0 * x0 + ct * xt)
                    }
                }
                if s.kind == .ddpm && t > 0 {
                    let beta = schedule.betas[t]
                    let sigma = Float((beta * (1 - acPrev) / (1 - acT)).squareRoot())
                    for i in 0..<count {
                        for j in 0..<perSample { xb[i * perSample + j] += sigma * streams[i].normal() }
                    }
                }
            }
        }
        return x
    }
}
