// The frozen base: a pixel-space SD-style UNet (ARCHITECTURE.md "UNet"). Forward with optional ControlNet
// residuals, and backward in two modes: full (weight gradients everywhere, for base training) and frozen
// (activation gradients through the decoder only, down to the residuals).
import Kernels

/// One ControlNet's contribution to a UNet pass: its residuals (input blocks..., middle) and its scale.
public struct ControlResiduals {
    public var residuals: [UnsafeMutablePointer<Float>]
    public var scale: Float
    /// Instead of `residuals`: computes residual k into the given buffer when the UNet adds it (the buffer, in the
    /// arena passed too, is released right after), so no residual is kept through the pass (ControlNetTraining:
    /// 34 MB at mnist batch 64). The same values as the stored residuals, so the same bits.
    public var compute: ((_ k: Int, _ into: UnsafeMutablePointer<Float>, _ scratch: BumpArena) -> Void)?
    /// Which of the UNet's samples the residuals reach (see ResidualSamples).
    public var samples: ResidualSamples
    public init(residuals: [UnsafeMutablePointer<Float>], scale: Float, samples: ResidualSamples = .each) {
        self.residuals = residuals; self.scale = scale; self.samples = samples
    }
    public init(scale: Float, samples: ResidualSamples = .each,
                compute: @escaping (_ k: Int, _ into: UnsafeMutablePointer<Float>, _ scratch: BumpArena) -> Void) {
        residuals = []; self.scale = scale; self.samples = samples; self.compute = compute
    }
}

/// How a ControlNet's residuals map onto the samples of the UNet pass they join. Classifier-free guidance runs the
/// conditional and the unconditional halves as one UNet pass of 2N samples while the ControlNet ran once on N:
/// its residuals then reach both halves (`repeated`), or, in guess mode, the conditional half only (`leading`).
/// Sharing one residual tensor this way costs no copy, and each sample gets exactly the additions it would get in
/// a pass of its own.
public enum ResidualSamples: Sendable, Equatable {
    /// The residuals have the UNet's batch: sample i reads residual sample i.
    case each
    /// The residuals hold `batch` samples; UNet sample i reads residual sample i % batch.
    case repeated(batch: Int)
    /// The residuals hold `batch` samples for UNet samples 0..<batch; later samples get none.
    case leading(batch: Int)

    /// The residual sample UNet sample i reads, or nil when it gets none.
    @inline(__always) func source(_ i: Int) -> Int? {
        switch self {
        case .each: return i
        case .repeated(let b): return i % b
        case .leading(let b): return i < b ? i : nil
        }
    }

    /// Samples the residuals hold for a UNet pass of n.
    func batch(_ n: Int) -> Int {
        switch self {
        case .each: return n
        case .repeated(let b), .leading(let b): return b
        }
    }
}

/// Gradients a frozen UNet hands back to its ControlNets: at every (injected) skip and at the middle output.
/// The gradient of residual k of a ControlNet with scale s is s * skips[k].
public struct ResidualGradients {
    public var skips: [UnsafeMutablePointer<Float>]
    public var middle: UnsafeMutablePointer<Float>
    public var all: [UnsafeMutablePointer<Float>] { skips + [middle] }
}

public final class UNet {
    public let config: ModelConfig
    public let table: ParameterTable
    let timeEmbed: TimeEmbeddingLayer
    let encoder: Encoder
    let outputBlocks: [Block]
    let skipIndex: [Int]          // which input block's output each decoder block concatenates
    let outNorm: NormParams, outConv: ConvParams

    public init(config: ModelConfig) {
        self.config = config
        var table = ParameterTable()
        timeEmbed = TimeEmbeddingLayer(&table, config: config)
        encoder = Encoder(&table, config: config)
        let C = config.modelChannels, E = config.embedDim, G = config.normGroups
        var chans = encoder.blockChannels, ch = encoder.middleChannels
        var blocks: [Block] = [], skips: [Int] = []
        for (level, mult) in config.channelMult.enumerated().reversed() {
            for j in 0...config.numResBlocks {
                let name = "output_blocks.\(blocks.count)"
                skips.append(chans.count - 1)
                let skipCh = chans.removeLast()
                var layers: [Layer] = [ResBlockLayer(&table, name + ".0", ch + skipCh, mult * C, embedDim: E, groups: G)]
                ch = mult * C
                if config.attentionLevels.contains(level) {
                    layers.append(AttentionLayer(&table, name + ".1", ch, heads: config.numHeads, groups: G))
                }
                if level > 0 && j == config.numResBlocks {
                    layers.append(UpsampleLayer(ConvParams(&table, name + ".\(layers.count).conv", ch, ch)))
                }
                blocks.append(Block(layers))
            }
        }
        outputBlocks = blocks; skipIndex = skips
        // backward sets each skip's gradient from its one decoder block (no zero fill), so each must have one.
        precondition(skips.sorted() == Array(encoder.blockChannels.indices), "every skip must feed exactly one decoder block")
        outNorm = NormParams(&table, "out.norm", ch, groups: G)
        outConv = ConvParams(&table, "out.conv", ch, config.inChannels)
        self.table = table
    }

    public var parameterCount: Int { table.count }
    /// Output channels of each input block then the middle: the shapes of a ControlNet's residuals.
    public var residualChannels: [Int] { encoder.blockChannels + [encoder.middleChannels] }

    // Saved by forward for backward.
    private var siluEmb: UnsafeMutablePointer<Float>?
    private var encoderOut: Encoder.Outputs?
    private var concatDims: [Dims] = []
    private var headIn: UnsafeMutablePointer<Float>?, headActs: UnsafeMutablePointer<Float>?
    private var headMean: UnsafeMutablePointer<Float>?, headRstd: UnsafeMutablePointer<Float>?
    private var headDims = Dims(n: 0, c: 0, h: 0, w: 0)
    private var forwardWasInference = false

    private func context(_ ws: WeightSource, _ arenas: StepArenas, dSiluEmb: UnsafeMutablePointer<Float>?) -> LayerContext {
        LayerContext(weights: ws, arenas: arenas, siluEmb: siluEmb!, dSiluEmb: dSiluEmb, embedDim: config.embedDim)
    }

    /// x: (N, in_channels, S, S), t: (N) timesteps, labels: (N) or nil -> predicted noise (N, in_channels, S, S),
    /// in `arenas.acts`. Each ControlNet's residuals are added, scaled, to the middle output and the skips.
    /// `inference`: no backward follows, so nothing is kept for one: every layer keeps only its output, each
    /// decoder block's temporaries are released as it returns, and the decoder's concatenations live in two
    /// alternating buffers instead of one per block. The arithmetic is the same call for call, so the output is
    /// bit-identical to a training forward's.
    public func forward(_ ws: WeightSource, x: UnsafeMutablePointer<Float>, t: [Int], labels: [Int]? = nil,
                        controls: [ControlResiduals] = [], arenas: StepArenas,
                        inference: Bool = false) -> UnsafeMutablePointer<Float> {
        let n = t.count, S = config.imageSize
        forwardWasInference = inference
        siluEmb = timeEmbed.forward(ws, t: t, labels: labels, arenas: arenas)
        var ctx = context(ws, arenas, dSiluEmb: nil)
        ctx.saveForBackward = !inference
        // A frozen encoder is never backpropagated (the ControlNet's residuals join after it): keep only the
        // block outputs, which the decoder concatenates.
        var encoderCtx = ctx
        encoderCtx.saveForBackward = ws.trainable && !inference
        // In bf16 the skips reach the decoder rounded to bf16 (their convs round them anyway), in every mode, so
        // inference, frozen and base-training forwards stay bit-identical. A frozen encoder in training then keeps
        // them in bf16 only (Encoder.compactForward, its fp32 outputs taking turns in the gradient arena, idle in
        // forward). Inference keeps nothing for backward, so compact skips would save little there (the arena is
        // 45 MB at mnist batch 16 either way): the fp32 skips are rounded as they are copied instead, the same
        // values without a store and a load per skip.
        let bf16 = CompactActivations.enabled(ws.precision)
        // Only a frozen UNet's training forward keeps its activations compactly (skips and concatenations).
        let compact = bf16 && !ws.trainable && !inference
        if compact { encoderCtx.compactEncoderTurns = arenas.grads }
        let enc = encoder.forward(x, Dims(n: n, c: config.inChannels, h: S, w: S), encoderCtx)
        encoderOut = enc
        var h = enc.middle, hd = enc.middleDims
        let last = enc.dims.count
        // Residual k of a control (samples of `per` floats), stored or computed into a temporary for `body`.
        func withResidual(_ control: ControlResiduals, _ k: Int, per: Int, _ body: (UnsafePointer<Float>) -> Void) {
            guard let compute = control.compute else { return body(control.residuals[k]) }
            let mark = arenas.acts.mark()
            let r = arenas.acts.take(control.samples.batch(n) * per)
            compute(k, r, arenas.acts)
            body(r)
            arenas.acts.release(to: mark)
        }
        /// Adds every control's residual `k` (per floats a sample) to y's samples, `stride` floats apart.
        func addResiduals(_ k: Int, per: Int, to y: UnsafeMutablePointer<Float>, stride: Int) {
            for control in controls where control.scale != 0 {
                withResidual(control, k, per: per) { r in
                    for i in 0..<n {
                        guard let j = control.samples.source(i) else { continue }
                        Elementwise.axpy(count: per, alpha: control.scale, x: r + j * per, y: y + i * stride)
                    }
                }
            }
        }
        for control in controls {
            precondition(control.compute != nil || control.residuals.count == last + 1,
                         "a ControlNet gives \(last + 1) residuals")
        }
        addResiduals(last, per: hd.count / n, to: h, stride: hd.count / n)
        concatDims.removeAll(keepingCapacity: true)
        // Each decoder block reads cat([h, skip (+ residuals)]). The next block's concatenation is taken before a
        // block runs, and the block writes its output straight into its leading channels. In inference a block's
        // input is dead once it returns, so two buffers of the widest concatenation take turns.
        var inputDims = [hd]
        for (j, block) in outputBlocks.enumerated() {
            let sd = enc.dims[skipIndex[j]], id = inputDims[j]
            inputDims[j] = Dims(n: n, c: id.c + sd.c, h: id.h, w: id.w)
            inputDims.append(block.outputDims(inputDims[j]))
        }
        // A frozen decoder in a compact (bf16) run keeps each block's input in bf16 inside the block
        // (ResBlockLayer's xHalf), so its fp32 concatenations take turns too. Those turns live in the gradient
        // arena, idle until backward and deeper then (its backward peak holds the widest concatenation's gradient
        // several times over), and are released before forward returns.
        let widest = inputDims.dropLast().map(\.count).max() ?? 0
        let turnArena = compact ? arenas.grads : arenas.acts, turnMark = turnArena.mark()
        let turns = inference || compact ? [turnArena.take(widest), turnArena.take(widest)] : []
        defer { if compact { turnArena.release(to: turnMark) } }
        func concatenation(_ j: Int) -> (UnsafeMutablePointer<Float>, Dims) {
            let cd = inputDims[j]
            return (turns.isEmpty ? arenas.acts.take(cd.count) : turns[j % 2], cd)
        }
        func fillSkip(_ j: Int, _ cat: UnsafeMutablePointer<Float>, _ cd: Dims) {
            let k = skipIndex[j], per = enc.dims[k].c * cd.spatial, hPart = cd.count / n - per
            for i in 0..<n {
                let target = cat + i * (hPart + per) + hPart
                if !enc.halfBlocks.isEmpty { BF16Buffer.load(count: per, enc.halfBlocks[k] + i * per, into: target) }
                else if bf16 { BF16Buffer.round(count: per, enc.blocks[k] + i * per, into: target) }
                else { target.update(from: enc.blocks[k] + i * per, count: per) }
            }
            addResiduals(k, per: per, to: cat + hPart, stride: hPart + per)
        }
        var (cat, cd) = concatenation(0)
        for i in 0..<n { (cat + i * cd.count / n).update(from: h + i * hd.count / n, count: hd.count / n) }
        fillSkip(0, cat, cd)
        for (j, block) in outputBlocks.enumerated() {
            concatDims.append(cd)
            hd = block.outputDims(cd)
            if j + 1 < outputBlocks.count {
                let (next, nd) = concatenation(j + 1)
                let mark = arenas.acts.mark()
                _ = block.forward(cat, cd, ctx, into: OutputSlot(pointer: next, sampleStride: nd.count / n))
                // Without backward, the block's inner layers' outputs are dead once its output is in place.
                if inference { arenas.acts.release(to: mark) }
                fillSkip(j + 1, next, nd)
                cat = next; cd = nd
            } else {
                h = block.forward(cat, cd, ctx)
            }
        }
        // out: conv(silu(norm(h)))
        headDims = hd; headIn = h
        let acts = arenas.acts, g = outNorm.groups
        let mean = acts.take(n * g), rstd = acts.take(n * g)
        let out = acts.take(n * config.inChannels * S * S)
        let keep = ws.trainable && !inference ? acts.take(hd.count) : nil
        let mark = acts.mark()
        let a = keep ?? acts.take(hd.count)
        GroupNorm.forwardSiLU(outNorm.shape(hd), x: h, gamma: ws.p(outNorm.weight), beta: ws.p(outNorm.bias), y: a,
                              mean: mean, rstd: rstd)
        outConv.forward(ws, a, hd, into: out, scratch: acts)
        acts.release(to: mark)
        headActs = keep; headMean = mean; headRstd = rstd
        return out
    }

    /// dOut: (N, in_channels, S, S). Frozen weights (ws.grads == nil): activation gradients through the decoder
    /// only, no weight-gradient work. Trainable: also every weight gradient, through the encoder and the time
    /// embedding. Returns the gradients at the skips and the middle output (for the ControlNets).
    @discardableResult
    public func backward(_ ws: WeightSource, dOut: UnsafeMutablePointer<Float>, arenas: StepArenas) -> ResidualGradients {
        guard let enc = encoderOut else { preconditionFailure("UNet.backward before forward") }
        precondition(!forwardWasInference, "UNet.backward after an inference forward, which kept nothing for it")
        let grads = arenas.grads, n = headDims.n
        let dSiluEmb = ws.trainable ? grads.takeZeroed(n * config.embedDim) : nil
        let ctx = context(ws, arenas, dSiluEmb: dSiluEmb)
        // Persistent for the step: the skip and middle gradients. Each skip feeds exactly one decoder block and the
        // middle output only the first, so each is set (not added) by one concatenation's backward below: no zero
        // fill (these fills were ~1% of a mnist ControlNet step). init checks that the skips are a permutation.
        let dSkips = enc.dims.map { grads.take($0.count) }
        let dMiddle = grads.take(enc.middleDims.count)
        // The gradient at the head's input, then at each decoder block's input h part, in two alternating slots
        // (block j reads one and fills the other), so they do not pile up on the stack.
        let slotCount = ([headDims.count] + (1..<outputBlocks.count).map { j in
            n * (concatDims[j].c - enc.dims[skipIndex[j]].c) * concatDims[j].spatial
        }).max()!
        var slots = (grads.take(slotCount), grads.take(slotCount))
        // Head.
        var dH = slots.0
        do {
            let mark = grads.mark()
            let dA = grads.take(headDims.count)
            outConv.backward(ws, headActs ?? dOut, headDims, dY: dOut, dX: dA, scratch: grads, overwriteInput: true)
            GroupNorm.backwardSiLU(outNorm.shape(headDims), x: headIn!, gamma: ws.p(outNorm.weight),
                                   beta: ws.p(outNorm.bias), mean: headMean!, rstd: headRstd!, dY: dA, dX: dH,
                                   dGamma: ws.g(outNorm.weight), dBeta: ws.g(outNorm.bias), overwriteInput: true)
            grads.release(to: mark)
        }
        // Decoder, last block first; each block's input was cat([h, skip]).
        for j in stride(from: outputBlocks.count - 1, through: 0, by: -1) {
            let cd = concatDims[j], k = skipIndex[j], sc = enc.dims[k].c
            let hc = cd.c - sc
            let dPrev = j == 0 ? dMiddle : slots.1
            let mark = grads.mark()
            let dCat = grads.take(cd.count)
            outputBlocks[j].backward(dH, dX: dCat, overwrite: true, ctx)
            ChannelConcat.backward(batch: n, channelsA: hc, channelsB: sc, spatial: cd.spatial, dY: dCat,
                                   dA: dPrev, dB: dSkips[k], overwrite: true)
            grads.release(to: mark)
            dH = dPrev
            slots = (slots.1, slots.0)
        }
        if ws.trainable {
            encoder.backward(dBlocks: dSkips, dMiddle: dMiddle, ctx)
            timeEmbed.backward(ws, dSiluEmb: dSiluEmb!, arenas: arenas)
        }
        return ResidualGradients(skips: dSkips, middle: dMiddle)
    }
}
