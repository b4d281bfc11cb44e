// Parameter and FLOP accounting for a config, from the spec's layout: the numbers `controlnet info --config` prints
// and the benchmark divides by. A multiply-add counts as 2 FLOPs; norms, activations and adds are left out (they
// are a few percent and not GEMM work).
import Foundation

public struct ModelCost: Sendable {
    public let config: ModelConfig
    public let unetParameters: Int
    public let controlNetParameters: Int
    public let zeroConvParameters: Int
    /// zero_convs.* plus middle_out.
    public let zeroConvCount: Int
    /// Forward FLOPs per sample.
    public let unetForward: Double, controlNetForward: Double
    /// The part of the UNet forward after the encoder (decoder + output head): what the frozen backward retraces.
    public let unetDecoderForward: Double
    /// Every distinct convolution geometry of the UNet and the ControlNet, with how often the layout lists it (the
    /// encoder both networks share counted once): what the benchmarks time, for any config.
    public let convolutions: [ConvGeometry: Int]
    /// A rough count of the floats one training step keeps per sample (activations and temporaries): for
    /// refusing configs and batches that cannot fit before anything is allocated, not for accounting.
    public let activationFloatsPerSample: Double

    public init(config c: ModelConfig) {
        self.config = c
        let unet = UNet(config: c), control = ControlNet(config: c)
        unetParameters = unet.parameterCount
        controlNetParameters = control.parameterCount
        zeroConvParameters = control.zeroConvParameterCount
        zeroConvCount = unet.residualChannels.count
        let C = c.modelChannels, E = c.embedDim, S = c.imageSize
        var uses: [ConvGeometry: Int] = [:]
        var attentionScores = 0.0   // softmax probabilities per sample (heads x T x T), summed over layers
        // side: the OUTPUT side; a stride-2 conv reads twice that.
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ side: Int, stride: Int = 1) -> Double {
            uses[ConvGeometry(inChannels: cin, outChannels: cout, kernel: k, stride: stride, inputSide: side * stride),
                 default: 0] += 1
            return 2.0 * Double(cin * cout * k * k * side * side)
        }
        func res(_ cin: Int, _ cout: Int, _ side: Int) -> Double {
            conv(cin, cout, 3, side) + conv(cout, cout, 3, side) + (cin == cout ? 0 : conv(cin, cout, 1, side)) + 2.0 * Double(E * cout)
        }
        func attn(_ ch: Int, _ side: Int) -> Double {
            let t = Double(side * side)
            attentionScores += Double(c.numHeads) * t * t
            return conv(ch, 3 * ch, 1, side) + conv(ch, ch, 1, side) + 2 * 2 * Double(ch) * t * t
        }
        let timeEmbed = 2.0 * Double(C * E + E * E)
        // Encoder (shared by both networks), tracking block output channels and sides for the skips.
        var enc = conv(c.inChannels, C, 3, S), chans = [C], sides = [S], ch = C, side = S
        for (level, mult) in c.channelMult.enumerated() {
            for _ in 0..<c.numResBlocks {
                enc += res(ch, mult * C, side); ch = mult * C
                if c.attentionLevels.contains(level) { enc += attn(ch, side) }
                chans.append(ch); sides.append(side)
            }
            if level != c.channelMult.count - 1 {
                side /= 2; enc += conv(ch, ch, 3, side, stride: 2); chans.append(ch); sides.append(side)
            }
        }
        let middle = res(ch, ch, side) + attn(ch, side) + res(ch, ch, side)
        let zero = zip(chans, sides).reduce(0.0) { $0 + conv($1.0, $1.0, 1, $1.1) } + conv(ch, ch, 1, side)
        var dec = 0.0
        var skipChans = chans
        for (level, mult) in c.channelMult.enumerated().reversed() {
            for j in 0...c.numResBlocks {
                dec += res(ch + skipChans.removeLast(), mult * C, side); ch = mult * C
                if c.attentionLevels.contains(level) { dec += attn(ch, side) }
                if level > 0 && j == c.numResBlocks { side *= 2; dec += conv(ch, ch, 3, side) }
            }
        }
        dec += conv(ch, c.inChannels, 3, S)
        var hint = 0.0, cin = c.hintChannels
        for w in c.hintBlockChannels { hint += conv(cin, w, 3, S); cin = w }
        hint += conv(cin, C, 3, S)
        convolutions = uses
        // What a training step keeps per sample, roughly: about one tensor the size of each conv output (saved
        // for backward, or a temporary), twice for the encoder both networks run, plus the attention
        // probabilities. Calibrated on mnist (7.5 MB per sample measured at batch 64, peak RSS).
        let encoderShare = 2.0
        var convOut = 0.0
        for (g, n) in uses { convOut += Double(g.outChannels * g.outputSide * g.outputSide * n) }
        activationFloatsPerSample = encoderShare * convOut + 2 * encoderShare * attentionScores
        unetForward = timeEmbed + enc + middle + dec
        unetDecoderForward = dec
        controlNetForward = timeEmbed + hint + enc + middle + zero
    }

    /// The convolutions ordered by the work they carry per forward pass of both networks, largest first.
    public var convolutionsByWork: [(geometry: ConvGeometry, uses: Int)] {
        convolutions.map { ($0.key, $0.value) }.sorted {
            ($0.geometry.flopsPerSample * Double($0.uses), $0.geometry.description)
                > ($1.geometry.flopsPerSample * Double($1.uses), $1.geometry.description)
        }
    }

    /// FLOPs per sample of one ControlNet training step: ControlNet forward and backward (dX and dW, ~2x forward),
    /// frozen UNet forward, and its decoder's activation-only backward (~1x the decoder forward).
    public var controlNetTrainingStep: Double { 3 * controlNetForward + unetForward + unetDecoderForward }
    /// FLOPs per sample of one base training step: forward plus backward (~2x forward).
    public var baseTrainingStep: Double { 3 * unetForward }
}

/// One convolution's geometry (padding is "same": k / 2).
public struct ConvGeometry: Sendable, Hashable, CustomStringConvertible {
    public var inChannels, outChannels, kernel, stride, inputSide: Int
    public var outputSide: Int { (inputSide + 2 * (kernel / 2) - kernel) / stride + 1 }
    public var flopsPerSample: Double {
        2.0 * Double(inChannels * outChannels * kernel * kernel * outputSide * outputSide)
    }
    public var description: String {
        let k = kernel == 3 ? "" : " \(kernel)x\(kernel)"
        let s = stride == 1 ? " @\(inputSide)" : " s\(stride) \(inputSide)->\(outputSide)"
        return "\(inChannels)->\(outChannels)\(k)\(s)"
    }
}
