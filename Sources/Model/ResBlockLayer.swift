// ResBlock(cin, cout) of ARCHITECTURE.md, forward and backward:
//   h = conv1(silu(norm1(x))); h += time_proj(silu(emb)); h = conv2(silu(norm2(h))); out = skip(x) + h
import Kernels

final class ResBlockLayer: Layer {
    let norm1: NormParams, conv1: ConvParams, timeProj: LinearParams, norm2: NormParams, conv2: ConvParams
    let skip: ConvParams?
    let inChannels: Int, outChannels: Int

    init(_ table: inout ParameterTable, _ name: String, _ cin: Int, _ cout: Int, embedDim: Int, groups: Int) {
        norm1 = NormParams(&table, name + ".norm1", cin, groups: groups)
        conv1 = ConvParams(&table, name + ".conv1", cin, cout)
        timeProj = LinearParams(&table, name + ".time_proj", embedDim, cout)
        norm2 = NormParams(&table, name + ".norm2", cout, groups: groups)
        conv2 = ConvParams(&table, name + ".conv2", cout, cout)
        skip = cin == cout ? nil : ConvParams(&table, name + ".skip", cin, cout, kernel: 1)
        inChannels = cin; outChannels = cout
    }

    // Saved by forward for backward (pointers into the activation arena, valid for the current step).
    private var dims = Dims(n: 0, c: 0, h: 0, w: 0)
    private var x: UnsafeMutablePointer<Float>?
    private var mean1: UnsafeMutablePointer<Float>?, rstd1: UnsafeMutablePointer<Float>?
    private var mean2: UnsafeMutablePointer<Float>?, rstd2: UnsafeMutablePointer<Float>?
    private var a1: UnsafeMutablePointer<Float>?      // silu(norm1(x)), when weights train (fp32)
    private var h: UnsafeMutablePointer<Float>?       // conv1 output + time projection (fp32)
    private var a2: UnsafeMutablePointer<Float>?      // silu(norm2(h)), when weights train (fp32)
    // Where a conv normalises its input as it reads it (Conv2D.fusesNorm: the Winograd convs), a1 and a2 are never
    // written: the conv reads x or h through these, in forward and for its weight gradient.
    private var norm1Input: NormalizedInput?, norm2Input: NormalizedInput?
    // Compact activations (bf16 runs, CompactActivations.swift): h is kept in bf16 (hHalf), and with trainable
    // weights a1 and a2 are recomputed in backward instead of kept.
    private var hHalf: UnsafeMutablePointer<UInt16>?
    // With frozen weights x is only read by norm1's backward, so a compact run keeps it in bf16 too (xHalf) and
    // holds no pointer to it: the caller may reuse x's memory once forward returns (the UNet's decoder does).
    private var xHalf: UnsafeMutablePointer<UInt16>?

    func outputDims(_ d: Dims) -> Dims { Dims(n: d.n, c: outChannels, h: d.h, w: d.w) }

    func forward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                 into slot: OutputSlot?) -> UnsafeMutablePointer<Float> {
        let ws = ctx.weights, acts = ctx.arenas.acts
        let compact = CompactActivations.enabled(ws.precision) && ctx.saveForBackward
        let keep = ctx.saveForWeights && !compact
        let od = outputDims(d), n = d.n, g = norm1.groups
        let compactInput = compact && !ctx.saveForWeights
        dims = d; self.x = compactInput ? nil : x
        // Persistent first, then temporaries above a mark (the arena is a stack). Without backward only the
        // output outlives the call.
        let out = slot?.pointer ?? acts.take(od.count), outStride = slot?.sampleStride ?? od.c * od.spatial
        let outputMark = acts.mark()
        let mean1 = acts.take(n * g), rstd1 = acts.take(n * g), mean2 = acts.take(n * g), rstd2 = acts.take(n * g)
        let hHalf = compact ? CompactActivations.take(od.count, acts) : nil
        let xHalf = compactInput ? CompactActivations.take(d.count, acts) : nil
        if let xHalf { BF16Buffer.store(count: d.count, x, into: xHalf) }
        let hKeep = compact ? nil : acts.take(od.count)
        let fuse1 = conv1.fusesNorm(d), fuse2 = conv2.fusesNorm(od)
        let scale1 = fuse1 ? acts.take(n * inChannels) : nil, scale2 = fuse2 ? acts.take(n * outChannels) : nil
        let a1keep = keep && !fuse1 ? acts.take(d.count) : nil, a2keep = keep && !fuse2 ? acts.take(od.count) : nil
        let mark = acts.mark()
        let h = hKeep ?? acts.take(od.count)
        // conv1's input silu(norm1(x)): normalised by conv1 as it reads x, or written out first (a1)
        var a1: UnsafeMutablePointer<Float>?
        var norm1Input: NormalizedInput?
        if let scale1 {
            norm1Input = GroupNorm.statisticsSiLU(norm1.shape(d), x: x, gamma: ws.p(norm1.weight),
                                                  beta: ws.p(norm1.bias), mean: mean1, rstd: rstd1, scale: scale1)
        } else {
            a1 = a1keep ?? acts.take(d.count)
            GroupNorm.forwardSiLU(norm1.shape(d), x: x, gamma: ws.p(norm1.weight), beta: ws.p(norm1.bias), y: a1!,
                                  mean: mean1, rstd: rstd1)
        }
        // h = conv1(a1) + time_proj(silu(emb)), the projection added as a per-sample bias of the conv
        let tp = acts.take(n * outChannels)
        timeProj.forward(ws, batch: n, ctx.siluEmb, into: tp)
        conv1.forward(ws, a1 ?? x, d, into: h, scratch: acts, sampleBias: tp, norm: norm1Input)
        var norm2Input: NormalizedInput?
        if let scale2 {
            norm2Input = GroupNorm.statisticsSiLU(norm2.shape(od), x: h, gamma: ws.p(norm2.weight),
                                                  beta: ws.p(norm2.bias), mean: mean2, rstd: rstd2, scale: scale2)
            conv2.forward(ws, h, od, into: out, scratch: acts, yStride: outStride, norm: norm2Input)
        } else {
            // a2 takes a1's place when a1 is a temporary (dead once conv1 has read it) and large enough.
            let a2 = a2keep ?? (a1 != nil && a1keep == nil && od.count <= d.count ? a1! : acts.take(od.count))
            GroupNorm.forwardSiLU(norm2.shape(od), x: h, gamma: ws.p(norm2.weight), beta: ws.p(norm2.bias), y: a2,
                                  mean: mean2, rstd: rstd2)
            conv2.forward(ws, a2, od, into: out, scratch: acts, yStride: outStride)
        }
        // out += skip(x) (or x), sample by sample: out may be a slice of a wider tensor
        var residual = UnsafePointer(x)
        if let skip {
            let s = acts.take(od.count)
            skip.forward(ws, x, d, into: s, scratch: acts)
            residual = UnsafePointer(s)
        }
        let per = od.c * od.spatial
        for i in 0..<n { Elementwise.axpy(count: per, alpha: 1, x: residual + i * per, y: out + i * outStride) }
        if let hHalf { BF16Buffer.store(count: od.count, h, into: hHalf) }
        acts.release(to: ctx.saveForBackward ? mark : outputMark)
        self.mean1 = mean1; self.rstd1 = rstd1; self.mean2 = mean2; self.rstd2 = rstd2
        self.h = hKeep; self.hHalf = hHalf; self.xHalf = xHalf; self.a1 = a1keep; self.a2 = a2keep
        self.norm1Input = norm1Input; self.norm2Input = norm2Input
        return out
    }

    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, overwrite: Bool,
                  _ ctx: LayerContext) {
        let ws = ctx.weights, grads = ctx.arenas.grads, trainable = ws.trainable
        let d = dims, od = outputDims(d), n = d.n
        let mark = grads.mark()
        // conv2: its input a2 is only read for the weight gradient (kept, or recomputed, exactly when weights
        // train). dA2, dH and dA1 each have one writer, which overwrites (no zero fill).
        let dA2 = grads.take(od.count)
        do {
            let scratch = grads.mark()
            // fused: conv2 normalises h again for its weight gradient (h is fp32 unless kept compactly)
            let fused = trainable && h != nil ? norm2Input : nil
            let input = a2 ?? fused.map { _ in h! } ?? (trainable ? activation(norm2, h, hHalf, od, ws, grads) : dOut)
            conv2.backward(ws, input, od, dY: dOut, dX: dA2, scratch: grads, overwriteInput: true, norm: fused)
            grads.release(to: scratch)
        }
        let dH = grads.take(od.count)
        if let hHalf {
            CompactActivations.groupNormBackward(norm2.shape(od), x: hHalf, gamma: ws.p(norm2.weight),
                                                 beta: ws.p(norm2.bias), mean: mean2!, rstd: rstd2!, dY: dA2, dX: dH,
                                                 dGamma: ws.g(norm2.weight), dBeta: ws.g(norm2.bias),
                                                 overwriteInput: true, arena: grads)
        } else {
            GroupNorm.backwardSiLU(norm2.shape(od), x: h!, gamma: ws.p(norm2.weight), beta: ws.p(norm2.bias),
                                   mean: mean2!, rstd: rstd2!, dY: dA2, dX: dH,
                                   dGamma: ws.g(norm2.weight), dBeta: ws.g(norm2.bias), overwriteInput: true)
        }
        // The time projection's gradient is dH summed over pixels per (sample, channel); conv1's bias gradient is
        // the same sums added over samples, so they are taken once.
        var biasDone = false
        if trainable || ctx.dSiluEmb != nil {
            let dTP = grads.takeZeroed(n * outChannels)
            ChannelBroadcastAdd.backward(batch: n, channels: outChannels, spatial: d.spatial, dY: dH, dV: dTP)
            timeProj.backward(ws, batch: n, ctx.siluEmb, dY: dTP, dX: ctx.dSiluEmb)
            if let dBias = ws.g(conv1.bias) {
                for i in 0..<n { Elementwise.axpy(count: outChannels, alpha: 1, x: dTP + i * outChannels, y: dBias) }
                biasDone = true
            }
        }
        if dX != nil || trainable {
            let dA1 = grads.take(d.count)
            let scratch = grads.mark()
            let fused = trainable && x != nil ? norm1Input : nil
            let input = a1 ?? fused.map { _ in x! } ?? (trainable ? activation(norm1, x, nil, d, ws, grads) : dH)
            conv1.backward(ws, input, d, dY: dH, dX: dA1, scratch: grads, biasGradient: !biasDone,
                           overwriteInput: true, norm: fused)
            grads.release(to: scratch)
            // dX nil: only the norm's affine gradients.
            if let xHalf {
                CompactActivations.groupNormBackward(norm1.shape(d), x: xHalf, gamma: ws.p(norm1.weight),
                                                     beta: ws.p(norm1.bias), mean: mean1!, rstd: rstd1!, dY: dA1,
                                                     dX: dX, dGamma: ws.g(norm1.weight), dBeta: ws.g(norm1.bias),
                                                     overwriteInput: overwrite, arena: grads)
            } else {
                GroupNorm.backwardSiLU(norm1.shape(d), x: x!, gamma: ws.p(norm1.weight), beta: ws.p(norm1.bias),
                                       mean: mean1!, rstd: rstd1!, dY: dA1, dX: dX,
                                       dGamma: ws.g(norm1.weight), dBeta: ws.g(norm1.bias), overwriteInput: overwrite)
            }
        }
        if let skip {
            // Frozen weights: the skip conv's backward reads no input (x is nil when kept compactly).
            skip.backward(ws, x ?? dOut, d, dY: dOut, dX: dX, scratch: grads)
        } else if let dX {
            Elementwise.axpy(count: d.count, alpha: 1, x: dOut, y: dX)
        }
        grads.release(to: mark)
    }

    /// silu(norm(input)) (d) recomputed into `arena` for a conv's weight gradient (compact runs), from the fp32
    /// input or its bf16 copy: the same kernel as forward (so the same bits from fp32; from bf16, within its
    /// rounding). Statistics go to scratch.
    private func activation(_ norm: NormParams, _ input: UnsafeMutablePointer<Float>?,
                            _ half: UnsafeMutablePointer<UInt16>?, _ d: Dims, _ ws: WeightSource,
                            _ arena: BumpArena) -> UnsafeMutablePointer<Float> {
        let a = arena.take(d.count)
        if let half {
            CompactActivations.groupNormForwardSiLU(norm.shape(d), x: half, gamma: ws.p(norm.weight),
                                                    beta: ws.p(norm.bias), y: a, arena: arena)
        } else {
            let stats = arena.take(2 * d.n * norm.groups)
            GroupNorm.forwardSiLU(norm.shape(d), x: input!, gamma: ws.p(norm.weight), beta: ws.p(norm.bias), y: a,
                                  mean: stats, rstd: stats + d.n * norm.groups)
        }
        return a
    }
}
