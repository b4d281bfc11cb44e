// Times Conv2D forward and backward at the mnist UNet's conv shapes with each algorithm (`controlnet bench --convs`),
// so the algorithm rule in ConvShape and the chunk sizes can be checked on the machine at hand.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// The mnist config's conv shapes that carry most of the work (3x3 same convs at each resolution, the widest
    /// decoder inputs, a downsample and a 1x1).
    public static func mnistShapes(batch: Int) -> [(String, ConvShape)] {
        [
            ("32->32 @28", ConvShape(batch: batch, inChannels: 32, outChannels: 32, height: 28, width: 28)),
            ("96->32 @28", ConvShape(batch: batch, inChannels: 96, outChannels: 32, height: 28, width: 28)),
            ("64->64 @28", ConvShape(batch: batch, inChannels: 64, outChannels: 64, height: 28, width: 28)),
            ("64->64 @14", ConvShape(batch: batch, inChannels: 64, outChannels: 64, height: 14, width: 14)),
            ("128->64 @14", ConvShape(batch: batch, inChannels: 128, outChannels: 64, height: 14, width: 14)),
            ("64->64 @7", ConvShape(batch: batch, inChannels: 64, outChannels: 64, height: 7, width: 7)),
            ("128->64 @7", ConvShape(batch: batch, inChannels: 128, outChannels: 64, height: 7, width: 7)),
            ("16->16 @28", ConvShape(batch: batch, inChannels: 16, outChannels: 16, height: 28, width: 28)),
            ("16->32 @28", ConvShape(batch: batch, inChannels: 16, outChannels: 32, height: 28, width: 28)),
            ("1->16 @28", ConvShape(batch: batch, inChannels: 1, outChannels: 16, height: 28, width: 28)),
            ("32->32 s2 28->14", ConvShape(batch: batch, inChannels: 32, outChannels: 32, height: 28, width: 28,
                                           stride: 2)),
            ("96->32 1x1 @28", ConvShape(batch: batch, inChannels: 96, outChannels: 32, height: 28, width: 28,
                                         kernel: 1, padding: 0)),
            ("32->32 1x1 @28", ConvShape(batch: batch, inChannels: 32, outChannels: 32, height: 28, width: 28,
                                         kernel: 1, padding: 0)),
            ("64->64 1x1 @14", ConvShape(batch: batch, inChannels: 64, outChannels: 64, height: 14, width: 14,
                                         kernel: 1, padding: 0)),
            ("64->192 1x1 @7", ConvShape(batch: batch, inChannels: 64, outChannels: 192, height: 7, width: 7,
                                         kernel: 1, padding: 0)),
            ("64->64 1x1 @7", ConvShape(batch: batch, inChannels: 64, outChannels: 64, height: 7, width: 7,
                                        kernel: 1, padding: 0)),
        ]
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

/// Fused GroupNorm+SiLU forward and backward at the mnist shapes (`controlnet bench --convs` prints them too).
public enum NormBenchmark {
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
        let start = PhaseProfiler.nanoseconds()
        body()
        t = min(t, Double(PhaseProfiler.nanoseconds() - start) * 1e-9)
    }
    return t
}
