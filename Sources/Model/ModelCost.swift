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

    public init(config c: ModelConfig) {
        self.config = c
        let unet = UNet(config: c), control = ControlNet(config: c)
        unetParameters = unet.parameterCount
        controlNetParameters = control.parameterCount
        zeroConvParameters = control.zeroConvParameterCount
        zeroConvCount = unet.residualChannels.count
        let C = c.modelChannels, E = c.embedDim, S = c.imageSize
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ side: Int) -> Double { 2.0 * Double(cin * cout * k * k * side * side) }
        func res(_ cin: Int, _ cout: Int, _ side: Int) -> Double {
            conv(cin, cout, 3, side) + conv(cout, cout, 3, side) + (cin == cout ? 0 : conv(cin, cout, 1, side)) + 2.0 * Double(E * cout)
        }
        func attn(_ ch: Int, _ side: Int) -> Double {
            let t = Double(side * side)
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
                side /= 2; enc += conv(ch, ch, 3, side); chans.append(ch); sides.append(side)
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
        unetForward = timeEmbed + enc + middle + dec
        unetDecoderForward = dec
        controlNetForward = timeEmbed + hint + enc + middle + zero
    }

    /// FLOPs per sample of one ControlNet training step: ControlNet forward and backward (dX and dW, ~2x forward),
    /// frozen UNet forward, and its decoder's activation-only backward (~1x the decoder forward).
    public var controlNetTrainingStep: Double { 3 * controlNetForward + unetForward + unetDecoderForward }
    /// FLOPs per sample of one base training step: forward plus backward (~2x forward).
    public var baseTrainingStep: Double { 3 * unetForward }
}
