// The trainable ControlNet (ARCHITECTURE.md "ControlNet"): a copy of the UNet's time embedding, label embedding,
// input blocks and middle, plus the hint encoder and the zero convs that produce one residual per input block
// and one for the middle.
import Kernels

public final class ControlNet {
    public let config: ModelConfig
    public let table: ParameterTable
    let timeEmbed: TimeEmbeddingLayer
    let hintConvs: [ConvParams]
    let encoder: Encoder
    let zeroConvs: [ConvParams]
    let middleOut: ConvParams

    public init(config: ModelConfig) {
        self.config = config
        var table = ParameterTable()
        // Registration order is PyTorch's: time_embed, label_embed, hint_block, input_blocks, middle, zero_convs.
        timeEmbed = TimeEmbeddingLayer(&table, config: config)
        var convs: [ConvParams] = [], cin = config.hintChannels
        for (j, c) in config.hintBlockChannels.enumerated() {
            convs.append(ConvParams(&table, "hint_block.\(j)", cin, c)); cin = c
        }
        convs.append(ConvParams(&table, "hint_block.\(convs.count)", cin, config.modelChannels))
        hintConvs = convs
        encoder = Encoder(&table, config: config)
        zeroConvs = encoder.blockChannels.enumerated().map { k, c in
            ConvParams(&table, "zero_convs.\(k)", c, c, kernel: 1)
        }
        middleOut = ConvParams(&table, "middle_out", encoder.middleChannels, encoder.middleChannels, kernel: 1)
        self.table = table
    }

    public var parameterCount: Int { table.count }
    /// Parameters of the zero-initialised convs (zero_convs.*, middle_out, and the last hint conv).
    public var zeroConvParameterCount: Int {
        (zeroConvs + [middleOut]).reduce(0) { $0 + $1.weightCount + $1.outChannels }
    }

    /// Elements of residual k (an input block's output, or the middle's for the last) at batch size n.
    public func residualCount(_ k: Int, batch n: Int) -> Int {
        let channels = encoder.blockChannels + [encoder.middleChannels]
        var size = config.imageSize
        // Each Downsample block halves the side; count the downsamples before block k.
        let blocks = encoder.inputBlocks
        for j in 0..<min(k + 1, blocks.count) where j > 0 {
            if let conv = (blocks[j].layers.first as? ConvLayer)?.conv, conv.stride == 2 { size /= 2 }
        }
        return n * channels[k] * size * size
    }

    /// Names of the parameters this network shares with a UNet (copied from it at initialisation).
    public func sharedNames(with unet: UNet) -> [String] {
        table.names.filter { unet.table.entry($0) != nil }
    }

    /// Makes `params` (this net's arena) ControlNet.from_unet: shared tensors copied from the UNet; the final hint
    /// conv, the zero convs and middle_out zero. The other hint convs keep what the caller initialised.
    public func initialize(params: UnsafeMutablePointer<Float>, from unet: UNet, unetParams: UnsafePointer<Float>) {
        for entry in table.entries {
            let dst = params + entry.offset
            if let src = unet.table.entry(entry.name) {
                precondition(src.shape == entry.shape, "\(entry.name): UNet \(src.shape) vs ControlNet \(entry.shape)")
                dst.update(from: unetParams + src.offset, count: entry.count)
            } else if entry.name.hasPrefix("hint_block.\(hintConvs.count - 1).") || entry.name.hasPrefix("zero_convs.")
                        || entry.name.hasPrefix("middle_out.") {
                dst.update(repeating: 0, count: entry.count)
            }
        }
    }

    // Saved by forward for backward.
    private var n = 0
    private var siluEmb: UnsafeMutablePointer<Float>?
    private var hintIn: UnsafeMutablePointer<Float>?
    private var hintPre: [UnsafeMutablePointer<Float>] = []
    private var encoderOut: Encoder.Outputs?

    /// x: (N, in_channels, S, S) the noisy image, hint: (N, hint_channels, S, S) -> residuals: one per input block
    /// (that block's output shape) then the middle's, in `arenas.acts`. Backward never reads the residuals.
    public func forward(_ ws: WeightSource, x: UnsafeMutablePointer<Float>, hint: UnsafeMutablePointer<Float>,
                        t: [Int], labels: [Int]? = nil, arenas: StepArenas) -> [UnsafeMutablePointer<Float>] {
        encode(ws, x: x, hint: hint, t: t, labels: labels, arenas: arenas)
        guard let enc = encoderOut else { preconditionFailure("ControlNet.encode keeps its outputs") }
        return (0...zeroConvs.count).map { k in
            let r = arenas.acts.take(k < zeroConvs.count ? enc.dims[k].count : enc.middleDims.count)
            residual(k, ws, into: r, scratch: arenas.acts)
            return r
        }
    }

    /// The pass up to the zero convs (what backward needs is kept); `residual` then gives each output, when it is
    /// needed (ControlResiduals.compute) or all at once (`forward`).
    public func encode(_ ws: WeightSource, x: UnsafeMutablePointer<Float>, hint: UnsafeMutablePointer<Float>,
                       t: [Int], labels: [Int]? = nil, arenas: StepArenas) {
        n = t.count
        let S = config.imageSize
        siluEmb = timeEmbed.forward(ws, t: t, labels: labels, arenas: arenas)
        var ctx = LayerContext(weights: ws, arenas: arenas, siluEmb: siluEmb!, dSiluEmb: nil, embedDim: config.embedDim)
        ctx.saveForBackward = ws.trainable
        // Hint encoder: conv, silu, ..., conv (the last without silu). Stride 1: pixel space needs no downsampling.
        // Only the pre-activations are kept (backward recomputes silu from them), all taken before the
        // activations, which live above a mark: the arena is a stack.
        let acts = arenas.acts
        hintIn = hint
        // Runs right after input block 0 (conv_in(x)) and adds the hint features into its output: the last
        // pre-activation is then a temporary above the kept ones, not held through the step.
        func addHintFeatures(_ block0: UnsafeMutablePointer<Float>, _ d0: Dims) {
            hintPre = hintConvs.dropLast().map { acts.take(n * $0.outChannels * S * S) }
            let mark = acts.mark()
            var g = hint, gd = Dims(n: n, c: config.hintChannels, h: S, w: S)
            for (j, conv) in hintConvs.enumerated() {
                let od = conv.outputDims(gd)
                if j < hintConvs.count - 1 {
                    let pre = hintPre[j]
                    conv.forward(ws, g, gd, into: pre, scratch: acts)
                    // The conv has consumed its input activation: the next one takes its place above the mark.
                    acts.release(to: mark)
                    let act = acts.take(od.count)
                    SiLU.forward(count: od.count, x: pre, y: act)
                    g = act
                } else {
                    let features = acts.take(od.count)
                    conv.forward(ws, g, gd, into: features, scratch: acts)
                    Elementwise.add(count: od.count, block0, features, into: block0)
                }
                gd = od
            }
            acts.release(to: mark)
        }
        encoderOut = encoder.forward(x, Dims(n: n, c: config.inChannels, h: S, w: S), ctx, afterFirst: addHintFeatures)
    }

    /// Residual k of the last `encode` into r (input block k's output shape; k = zero conv count: the middle's):
    /// zero_convs[k] of input block k's output, or middle_out of the middle's. Workspace from `scratch`, released.
    public func residual(_ k: Int, _ ws: WeightSource, into r: UnsafeMutablePointer<Float>, scratch: BumpArena) {
        guard let enc = encoderOut else { preconditionFailure("ControlNet.residual before encode") }
        if k < zeroConvs.count {
            zeroConvs[k].forward(ws, enc.blocks[k], enc.dims[k], into: r, scratch: scratch)
        } else {
            middleOut.forward(ws, enc.middle, enc.middleDims, into: r, scratch: scratch)
        }
    }

    /// dResiduals: the UNet's gradients at the injection points (ResidualGradients.all); this ControlNet's residual
    /// gradients are scale * dResiduals. Accumulates every weight gradient into ws.grads. The dResiduals buffers
    /// are used up (overwritten with the encoder's block gradients).
    public func backward(_ ws: WeightSource, dResiduals: [UnsafeMutablePointer<Float>], scale: Float,
                         arenas: StepArenas) {
        guard let enc = encoderOut else { preconditionFailure("ControlNet.backward before forward") }
        precondition(ws.trainable, "ControlNet.backward needs gradient buffers")
        precondition(dResiduals.count == zeroConvs.count + 1, "expected \(zeroConvs.count + 1) residual gradients")
        let grads = arenas.grads, S = config.imageSize
        let dSiluEmb = grads.takeZeroed(n * config.embedDim)
        let ctx = LayerContext(weights: ws, arenas: arenas, siluEmb: siluEmb!, dSiluEmb: dSiluEmb, embedDim: config.embedDim)
        // Each zero conv's input gradient takes the place of its output gradient (the same shape), dead once the
        // conv has read it: the encoder's block gradients need no buffers of their own.
        func backThrough(_ conv: ConvParams, _ input: UnsafeMutablePointer<Float>, _ d: Dims,
                         _ dResidual: UnsafeMutablePointer<Float>) {
            let mark = grads.mark()
            let dY: UnsafePointer<Float>
            if scale == 1 {
                dY = UnsafePointer(dResidual)
            } else {
                let q = grads.take(d.count)
                for i in 0..<d.count { q[i] = scale * dResidual[i] }
                dY = UnsafePointer(q)
            }
            let dX = grads.take(d.count)
            conv.backward(ws, input, d, dY: dY, dX: dX, scratch: grads, overwriteInput: true)
            dResidual.update(from: dX, count: d.count)
            grads.release(to: mark)
        }
        for (k, conv) in zeroConvs.enumerated() { backThrough(conv, enc.blocks[k], enc.dims[k], dResiduals[k]) }
        backThrough(middleOut, enc.middle, enc.middleDims, dResiduals[zeroConvs.count])
        let dBlocks = Array(dResiduals.prefix(zeroConvs.count)), dMiddle = dResiduals[zeroConvs.count]
        encoder.backward(dBlocks: dBlocks, dMiddle: dMiddle, ctx)
        // Block 0's output was conv_in(x) + hint features, so dBlocks[0] is also the hint encoder's output gradient.
        // The gradient flows through two alternating slots; each conv's input silu(pre) is recomputed.
        var dG = UnsafePointer(dBlocks[0])
        let widest = hintConvs.map(\.inChannels).max()! * n * S * S
        let slots = [grads.take(widest), grads.take(widest)]
        for j in stride(from: hintConvs.count - 1, through: 0, by: -1) {
            let conv = hintConvs[j]
            let inDims = Dims(n: n, c: conv.inChannels, h: S, w: S)
            if j == 0 {
                conv.backward(ws, hintIn!, inDims, dY: dG, dX: nil, scratch: grads)
            } else {
                let dPre = slots[j % 2]
                let mark = grads.mark()
                let input = grads.take(inDims.count)
                SiLU.forward(count: inDims.count, x: hintPre[j - 1], y: input)
                let dAct = grads.takeZeroed(inDims.count)
                conv.backward(ws, input, inDims, dY: dG, dX: dAct, scratch: grads)
                dPre.update(repeating: 0, count: inDims.count)
                SiLU.backward(count: inDims.count, x: hintPre[j - 1], dY: dAct, dX: dPre)
                grads.release(to: mark)
                dG = UnsafePointer(dPre)
            }
        }
        timeEmbed.backward(ws, dSiluEmb: dSiluEmb, arenas: arenas)
    }
}
