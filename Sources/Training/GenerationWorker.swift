// One generation thread: its own UNet and ControlNet objects and its own activation arenas, running the sampler
// over the passes it is handed. The network objects keep per-pass state and the arenas are stacks, so no two
// threads may share them; the weights, hints and labels are shared read-only, and each pass writes only its own
// samples of the output. Every network call is an inference forward (nothing kept for a backward).
import Foundation
import Kernels
import Model

/// What every worker of one `generate` call reads: the weights, the inputs, the settings. Read-only while the
/// workers run.
struct GenerationJob {
    struct Control {
        let params: UnsafeMutablePointer<Float>
        let scale: Float
    }
    let config: ModelConfig
    let base: UnsafeMutablePointer<Float>
    /// The ControlNets that apply (scale != 0), in the generator's order.
    let controls: [Control]
    let settings: GenerationSettings
    let sampler: SamplerSettings
    /// (count, hint_channels, S, S) for the whole set, indexed by global sample number; nil without ControlNets.
    let hints: UnsafeMutablePointer<Float>?
    /// (count), global sample numbers; nil: no labels.
    let labels: [Int]?
    /// (count, C, S, S): every pass writes its samples here.
    let output: UnsafeMutablePointer<Float>
    /// The Winograd weights of every frozen conv, transformed once for the whole call and shared.
    let transformed: TransformedWeights

    var perSample: Int { config.inChannels * config.imageSize * config.imageSize }
    var hintPerSample: Int { config.hintChannels * config.imageSize * config.imageSize }
    /// Classifier-free guidance applies: a class model, labels, and a scale other than 1.
    var guided: Bool { config.numClasses > 0 && labels != nil && settings.cfgScale != 1 }
}

final class GenerationWorker {
    let unet: UNet
    private var nets: [ControlNet] = []
    let arenas = StepArenas()
    private let diffusion = DiffusionSampler()

    init(config: ModelConfig) { unet = UNet(config: config) }

    /// Samples `range` (global sample numbers) of `job` into job.output. Sample i's starting noise is drawn from
    /// (seed, i) alone, so which worker, rank or pass computes it does not matter.
    func run(_ range: Range<Int>, _ job: GenerationJob) {
        while nets.count < job.controls.count { nets.append(ControlNet(config: job.config)) }
        let n = range.count, per = job.perSample
        let hint = job.hints.map { $0 + range.lowerBound * job.hintPerSample }
        let labels = job.labels.map { Array($0[range]) }
        let images = diffusion.sample(count: n, perSample: per, settings: job.sampler, firstIndex: range.lowerBound) {
            x, point in denoise(x, n: n, point: point, hint: hint, labels: labels, job)
        }
        images.withUnsafeBufferPointer { job.output.advanced(by: range.lowerBound * per).update(from: $0.baseAddress!, count: n * per) }
    }

    /// The (guided) noise prediction for x: (n, C, S, S) at point.t, in this worker's arenas until the next call.
    /// hint: (n, hint_channels, S, S) when there are ControlNets; labels: (n) or nil.
    func denoise(_ x: UnsafeMutablePointer<Float>, n: Int, point: SamplingPoint, hint: UnsafeMutablePointer<Float>?,
                 labels: [Int]?, _ job: GenerationJob) -> UnsafePointer<Float> {
        arenas.reset()
        let s = job.settings, per = job.perSample
        let t = [Int](repeating: point.t, count: n)
        let frozen = WeightSource(params: job.base, grads: nil, precision: s.precision, transformed: job.transformed)
        // Outside the guidance window (and at scale 0, filtered out of job.controls) a ControlNet is not run at
        // all: the UNet alone, bit for bit.
        let inWindow = point.fractionBefore >= s.guidanceStart && point.fractionAfter <= s.guidanceEnd + 1e-9
        var residuals: [ControlResiduals] = []
        if inWindow {
            for (c, net) in zip(job.controls, nets) {
                guard let hint else { preconditionFailure("ControlNets need hints") }
                // Guess mode: the ControlNets see no label.
                let cws = WeightSource(params: c.params, grads: nil, precision: s.precision, transformed: job.transformed)
                let r = net.forward(cws, x: x, hint: hint, t: t, labels: s.guessMode ? nil : labels, arenas: arenas)
                if s.guessMode {
                    // Residuals weighted 0.825^(K-1-k): the shallow ones least.
                    for (k, p) in r.enumerated() {
                        Elementwise.scale(count: net.residualCount(k, batch: n), alpha: Float(pow(0.825, Double(r.count - 1 - k))), x: p)
                    }
                }
                residuals.append(ControlResiduals(residuals: r, scale: c.scale))
            }
        }
        guard job.guided, let labels else {
            return UnsafePointer(unet.forward(frozen, x: x, t: t, labels: labels, controls: residuals, arenas: arenas,
                                              inference: true))
        }
        let none = [Int](repeating: job.config.numClasses, count: n)
        let cond: UnsafeMutablePointer<Float>, uncond: UnsafeMutablePointer<Float>
        if s.batchGuidance {
            // One UNet pass over [x; x] (2n, C, S, S) with [labels; none]: twice the columns per GEMM. The
            // ControlNets ran once, on n: their residuals reach both halves, or only the conditional one in guess
            // mode (the ControlNet reference's choice), without a copy.
            let pair = arenas.acts.take(2 * n * per)
            pair.update(from: x, count: n * per)
            (pair + n * per).update(from: x, count: n * per)
            let both = residuals.map {
                ControlResiduals(residuals: $0.residuals, scale: $0.scale,
                                 samples: s.guessMode ? .leading(batch: n) : .repeated(batch: n))
            }
            cond = unet.forward(frozen, x: pair, t: t + t, labels: labels + none, controls: both, arenas: arenas,
                                inference: true)
            uncond = cond + n * per
        } else {
            cond = unet.forward(frozen, x: x, t: t, labels: labels, controls: residuals, arenas: arenas, inference: true)
            uncond = unet.forward(frozen, x: x, t: t, labels: none, controls: s.guessMode ? [] : residuals,
                                  arenas: arenas, inference: true)
        }
        let scale = s.cfgScale
        for i in 0..<(n * per) { cond[i] = uncond[i] + scale * (cond[i] - uncond[i]) }
        return UnsafePointer(cond)
    }
}
