// Attention(c) of ARCHITECTURE.md, forward and backward:
//   qkv = qkv_conv(norm(x)); a = softmax(q.k / sqrt(d)) v per head; out = x + proj(a)
import Kernels

final class AttentionLayer: Layer {
    let norm: NormParams, qkv: ConvParams, proj: ConvParams
    let channels: Int, heads: Int

    init(_ table: inout ParameterTable, _ name: String, _ c: Int, heads: Int, groups: Int) {
        norm = NormParams(&table, name + ".norm", c, groups: groups)
        qkv = ConvParams(&table, name + ".qkv", c, 3 * c, kernel: 1)
        proj = ConvParams(&table, name + ".proj", c, c, kernel: 1)
        channels = c; self.heads = heads
    }

    private var dims = Dims(n: 0, c: 0, h: 0, w: 0)
    private var x: UnsafeMutablePointer<Float>?
    private var mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?
    private var normed: UnsafeMutablePointer<Float>?   // norm(x), only when weights train
    private var qkvOut: UnsafeMutablePointer<Float>?   // (N, 3C, T) (fp32 runs)
    private var probs: UnsafeMutablePointer<Float>?    // (N, heads, T, T) (fp32 runs)
    private var attended: UnsafeMutablePointer<Float>? // (N, C, T), only when weights train
    // Compact activations (bf16 runs, CompactActivations.swift): qkv kept in bf16, which loses nothing (the four
    // products round their operands to bf16 anyway), and no probabilities: backward recomputes them from qkv, head
    // by head, with the same calls as forward (the same bits). At 64x64 batch 16 the probabilities are 17 MB a layer.
    private var qkvHalf: UnsafeMutablePointer<UInt16>?

    func outputDims(_ d: Dims) -> Dims { d }

    private func shape(_ d: Dims, _ precision: Precision) -> AttentionShape {
        AttentionShape(batch: d.n, channels: channels, heads: heads, tokens: d.spatial, precision: precision)
    }

    func forward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                 into slot: OutputSlot?) -> UnsafeMutablePointer<Float> {
        let ws = ctx.weights, acts = ctx.arenas.acts, keep = ctx.saveForWeights
        let compact = CompactActivations.enabled(ws.precision) && ctx.saveForBackward
        let n = d.n, t = d.spatial, s = shape(d, ws.precision)
        dims = d; self.x = x
        let out = slot?.pointer ?? acts.take(d.count), outStride = slot?.sampleStride ?? d.c * d.spatial
        let outputMark = acts.mark()
        let mean = acts.take(n * norm.groups), rstd = acts.take(n * norm.groups)
        let qkvHalf = compact ? CompactActivations.take(n * 3 * channels * t, acts) : nil
        let qkvKeep = compact ? nil : acts.take(n * 3 * channels * t)
        // Without backward, or when backward recomputes them, the probabilities live one head at a time.
        let probs = ctx.saveForBackward && !compact ? acts.take(n * heads * t * t) : nil
        let normedKeep = keep ? acts.take(d.count) : nil, attendedKeep = keep ? acts.take(d.count) : nil
        let mark = acts.mark()
        let qkvOut = qkvKeep ?? acts.take(n * 3 * channels * t)
        let normed = normedKeep ?? acts.take(d.count)
        GroupNorm.forward(norm.shape(d), x: x, gamma: ws.p(norm.weight), beta: ws.p(norm.bias), y: normed,
                          mean: mean, rstd: rstd)
        qkv.forward(ws, normed, d, into: qkvOut, scratch: acts)
        let attended = attendedKeep ?? acts.take(d.count)
        Attention.forward(s, qkv: qkvOut, a: attended, probs: probs, workspace: acts.take(s.workspaceCount))
        if let qkvHalf { BF16Buffer.store(count: n * 3 * channels * t, qkvOut, into: qkvHalf) }
        proj.forward(ws, attended, d, into: out, scratch: acts, yStride: outStride)
        let per = d.c * t
        for i in 0..<n { Elementwise.axpy(count: per, alpha: 1, x: x + i * per, y: out + i * outStride) }
        acts.release(to: ctx.saveForBackward ? mark : outputMark)
        self.mean = mean; self.rstd = rstd; self.qkvOut = qkvKeep; self.qkvHalf = qkvHalf; self.probs = probs
        self.normed = normedKeep; self.attended = attendedKeep
        return out
    }

    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, overwrite: Bool,
                  _ ctx: LayerContext) {
        let ws = ctx.weights, grads = ctx.arenas.grads
        let d = dims, s = shape(d, ws.precision)
        guard dX != nil || ws.trainable else { return }
        let mark = grads.mark()
        let dA = grads.take(d.count)
        proj.backward(ws, attended ?? dOut, d, dY: dOut, dX: dA, scratch: grads, overwriteInput: true)
        let dQKV = grads.takeZeroed(3 * d.count)
        if let qkvHalf {
            // Sample by sample, each sample's qkv widened into a scratch of (3C, T) floats.
            let per = 3 * d.c * d.spatial, one = shape(Dims(n: 1, c: d.c, h: d.h, w: d.w), ws.precision)
            let scratch = grads.mark()
            let sample = grads.take(per), workspace = grads.take(one.workspaceCount)
            for i in 0..<d.n {
                BF16Buffer.load(count: per, qkvHalf + i * per, into: sample)
                Attention.backward(one, qkv: sample, probs: nil, dA: dA + i * d.c * d.spatial, dQKV: dQKV + i * per,
                                   workspace: workspace)
            }
            grads.release(to: scratch)
        } else {
            Attention.backward(s, qkv: qkvOut!, probs: probs!, dA: dA, dQKV: dQKV,
                               workspace: grads.take(s.workspaceCount))
        }
        let dN = grads.take(d.count)
        qkv.backward(ws, normed ?? dA, d, dY: dQKV, dX: dN, scratch: grads, overwriteInput: true)
        // without dX only the norm's affine gradients (dX nil skips the input gradient)
        GroupNorm.backward(norm.shape(d), x: x!, gamma: ws.p(norm.weight), mean: mean!, rstd: rstd!, dY: dN,
                           dX: dX, dGamma: ws.g(norm.weight), dBeta: ws.g(norm.bias), overwriteInput: overwrite)
        if let dX { Elementwise.axpy(count: d.count, alpha: 1, x: dOut, y: dX) }
        grads.release(to: mark)
    }
}
