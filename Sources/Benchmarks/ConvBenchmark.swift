// Times Conv2D forward and backward at a model config's conv shapes with each algorithm, and the fused
// GroupNorm+SiLU at its widest maps (`controlnet bench --convs`), so the algorithm rule in ConvShape and the chunk
// sizes can be checked on the machine at hand for any config.
import Foundation
import Kernels
import Model

public struct ConvMeasurement: Sendable, Codable {
    public var label: String
    public var algorithm: String
    public var samplesPerGemm: Int
    /// Milliseconds of the fastest repeat: forward, backward with dX and dW, backward with dX only.
    public var forwardMs, backwardMs, backwardInputOnlyMs: Double
    /// Direct-convolution FLOPs (2 Cout Cin K^2 Ho Wo N per pass) over the time: comparable across algorithms.
    public var forwardGflops, backwardGflops: Double
}

public enum ConvBenchmark {
    /// Every distinct conv of the config (UNet and ControlNet) at batch `batch`, largest work first.
    public static func shapes(config: ModelConfig, batch: Int) -> [(String, ConvShape)] {
        ModelCost(config: config).convolutionsByWork.map { g, _ in
            (g.description, ConvShape(batch: batch, inChannels: g.inChannels, outChannels: g.outChannels,
                                      height: g.inputSide, width: g.inputSide, kernel: g.kernel, stride: g.stride,
                                      padding: g.kernel / 2))
        }
    }

    /// Best of `repeats` (after one warm-up) for each pass, on seeded data.
    public static func measure(_ label: String, _ s: ConvShape, repeats: Int) -> ConvMeasurement {
        let xCount = s.batch * s.inChannels * s.height * s.width
        let yCount = s.batch * s.outChannels * s.outHeight * s.outWidth
        let wCount = s.outChannels * s.patchSize
        func buffer(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            var state: UInt32 = UInt32(truncatingIfNeeded: n) | 1
            for i in 0..<n {
                state ^= state << 13; state ^= state >> 17; state ^= state << 5
                p[i] = Float(state % 2000) / 1000 - 1
            }
            return p
        }
        let x = buffer(xCount), w = buffer(wCount), b = buffer(s.outChannels), y = buffer(yCount)
        let dY = buffer(yCount), dX = buffer(xCount), dW = buffer(wCount), dB = buffer(s.outChannels)
        let ws = buffer(s.workspaceCount)
        defer { for p in [x, w, b, y, dY, dX, dW, dB, ws] { p.deallocate() } }
        func best(_ body: () -> Void) -> Double { fastestSeconds(repeats: repeats, body) }
        let fwd = best { Conv2D.forward(s, x: x, weight: w, bias: b, y: y, workspace: ws) }
        let bwd = best { Conv2D.backward(s, x: x, weight: w, dY: dY, dX: dX, dWeight: dW, dBias: dB, workspace: ws) }
        let bwdX = best { Conv2D.backward(s, x: x, weight: w, dY: dY, dX: dX, dWeight: nil, dBias: nil, workspace: ws) }
        let flops = 2 * Double(yCount) * Double(s.patchSize)
        return ConvMeasurement(label: label, algorithm: s.algorithm.rawValue, samplesPerGemm: s.samplesPerGemm,
                               forwardMs: fwd * 1e3, backwardMs: bwd * 1e3, backwardInputOnlyMs: bwdX * 1e3,
                               forwardGflops: flops / fwd / 1e9, backwardGflops: 2 * flops / bwd / 1e9)
    }
}

/// Fused GroupNorm+SiLU forward and backward (`controlnet bench --convs` prints them too).
public enum NormBenchmark {
    /// The GroupNorm+SiLU in front of the config's 3x3 convs with the most elements (the two largest), at `batch`.
    public static func shapes(config: ModelConfig, batch: Int) -> [(String, GroupNormShape)] {
        let geometries = ModelCost(config: config).convolutionsByWork.map(\.geometry)
            .filter { $0.kernel == 3 && $0.stride == 1 && $0.inChannels % config.normGroups == 0 }
        var seen = Set<[Int]>(), out: [(String, GroupNormShape)] = []
        for g in geometries.sorted(by: { $0.inChannels * $0.inputSide * $0.inputSide > $1.inChannels * $1.inputSide * $1.inputSide }) {
            guard seen.insert([g.inChannels, g.inputSide]).inserted else { continue }
            out.append(("groupnorm+silu \(g.inChannels)ch @\(g.inputSide)",
                        GroupNormShape(batch: batch, channels: g.inChannels, spatial: g.inputSide * g.inputSide,
                                       groups: config.normGroups)))
            if out.count == 2 { break }
        }
        return out
    }

    /// Milliseconds of the fastest of `repeats`: forwardSiLU, backwardSiLU (dX, dGamma, dBeta).
    public static func measure(_ s: GroupNormShape, repeats: Int) -> (forwardMs: Double, backwardMs: Double) {
        let count = s.batch * s.channels * s.spatial
        func buffer(_ n: Int, _ scale: Float) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            for i in 0..<n { p[i] = scale * Float((i * 7919) % 2001 - 1000) / 1000 }
            return p
        }
        let x = buffer(count, 2), y = buffer(count, 1), dY = buffer(count, 1), dX = buffer(count, 1)
        let gamma = buffer(s.channels, 1), beta = buffer(s.channels, 1)
        let dGamma = buffer(s.channels, 1), dBeta = buffer(s.channels, 1)
        let mean = buffer(s.batch * s.groups, 1), rstd = buffer(s.batch * s.groups, 1)
        defer { for p in [x, y, dY, dX, gamma, beta, dGamma, dBeta, mean, rstd] { p.deallocate() } }
        func best(_ body: () -> Void) -> Double { fastestSeconds(repeats: repeats, body) * 1e3 }
        let f = best { GroupNorm.forwardSiLU(s, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd) }
        let b = best {
            GroupNorm.backwardSiLU(s, x: x, gamma: gamma, beta: beta, mean: mean, rstd: rstd, dY: dY, dX: dX,
                                   dGamma: dGamma, dBeta: dBeta)
        }
        return (f, b)
    }
}

/// Seconds of the fastest of `repeats` timed calls of `body`, after one untimed warm-up call.
private func fastestSeconds(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var t = Double.infinity
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    return t
}
