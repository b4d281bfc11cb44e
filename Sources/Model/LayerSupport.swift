// What every layer of the network shares: activation dims, the per-call context (weights, arenas, the
// embedding), the Layer protocol, and conv/linear calls bound to parameter offsets.
import Kernels

/// Shape of an activation tensor (N, C, H, W).
public struct Dims: Sendable, Hashable, CustomStringConvertible {
    public var n: Int, c: Int, h: Int, w: Int
    public init(n: Int, c: Int, h: Int, w: Int) { self.n = n; self.c = c; self.h = h; self.w = w }
    public var spatial: Int { h * w }
    public var count: Int { n * c * h * w }
    public var description: String { "(\(n), \(c), \(h), \(w))" }
}

/// Memory for one forward/backward pass: activations live in `acts`, gradients and temporaries in `grads`.
public final class StepArenas: @unchecked Sendable {
    // @unchecked: one training step uses it at a time.
    public let acts = BumpArena()
    public let grads = BumpArena()
    public init() {}
    public func reset() { acts.reset(); grads.reset() }
    public var capacityBytes: Int { (acts.capacity + grads.capacity) * 4 }
}

/// Everything a layer needs besides its input: where its weights are and whether they train, the memory, and
/// the (N, E) silu(time embedding) that every ResBlock projects.
struct LayerContext {
    let weights: WeightSource
    let arenas: StepArenas
    let siluEmb: UnsafeMutablePointer<Float>           // (N, E)
    let dSiluEmb: UnsafeMutablePointer<Float>?         // (N, E) gradient accumulator when the embedding trains
    let embedDim: Int
    /// Keep what backward needs. False where no backward follows (the frozen UNet's encoder, inference): a layer
    /// then keeps only its output and releases everything else before it returns.
    var saveForBackward = true
    /// Set by the UNet for a frozen encoder in a compact training forward: the arena its fp32 block outputs take
    /// turns in (Encoder.compactForward).
    var compactEncoderTurns: BumpArena?
    /// Keep what weight gradients need (false in inference and in the frozen UNet).
    var saveForWeights: Bool { saveForBackward && weights.trainable }
}

/// A layer saves what its backward needs in forward (for the current batch) and adds dX in backward.
/// Where a layer writes its output when not into a fresh tensor: `pointer` with samples `sampleStride` floats
/// apart, e.g. the leading channels of the decoder's next concatenation (so the block output is never copied
/// and never kept twice).
struct OutputSlot {
    let pointer: UnsafeMutablePointer<Float>
    let sampleStride: Int
}

protocol Layer: AnyObject {
    func outputDims(_ input: Dims) -> Dims
    /// x: input (dims) -> the output (outputDims(dims)): into `slot` when given (the pointer is returned), else a
    /// fresh contiguous tensor in ctx.arenas.acts.
    func forward(_ x: UnsafeMutablePointer<Float>, _ dims: Dims, _ ctx: LayerContext,
                 into slot: OutputSlot?) -> UnsafeMutablePointer<Float>
    /// dOut: (outputDims); adds into dX (input dims) when non-nil, or overwrites it with `overwrite` (a fresh
    /// buffer: no zero fill first); weight grads when ctx.weights.trainable.
    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, overwrite: Bool,
                  _ ctx: LayerContext)
}

extension Layer {
    /// Adds into dX.
    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, _ ctx: LayerContext) {
        backward(dOut, dX: dX, overwrite: false, ctx)
    }
}

extension ConvParams {
    func shape(_ d: Dims, _ precision: Precision = .fp32) -> ConvShape {
        ConvShape(batch: d.n, inChannels: inChannels, outChannels: outChannels, height: d.h, width: d.w,
                  kernel: kernel, stride: stride, padding: kernel / 2, precision: precision)
    }
    /// Whether this conv at input dims d can read silu(groupnorm(x)) from x as it goes (Conv2D.fusesNorm).
    func fusesNorm(_ d: Dims) -> Bool { Conv2D.fusesNorm(shape(d)) }
    func outputDims(_ d: Dims) -> Dims {
        let s = shape(d)
        return Dims(n: d.n, c: outChannels, h: s.outHeight, w: s.outWidth)
    }
    /// x: (N, Cin, H, W) -> y: (N, Cout, Ho, Wo) with samples yStride apart (default contiguous), overwritten;
    /// plus sampleBias (N, Cout) when given. Workspace comes from `scratch` and is released. `norm`: the input
    /// is silu(groupnorm(x)), normalised as the conv reads x (only where `fusesNorm`).
    func forward(_ ws: WeightSource, _ x: UnsafePointer<Float>, _ d: Dims, into y: UnsafeMutablePointer<Float>,
                 scratch: BumpArena, sampleBias: UnsafePointer<Float>? = nil, yStride: Int? = nil,
                 norm: NormalizedInput? = nil) {
        let s = shape(d, ws.precision)
        let mark = scratch.mark()
        Conv2D.forward(s, x: x, weight: ws.p(weight), bias: ws.p(bias), y: y,
                       workspace: scratch.take(s.workspaceCount), sampleBias: sampleBias, yStride: yStride,
                       transformed: ws.transformed, norm: norm)
        scratch.release(to: mark)
    }
    /// dY: (N, Cout, Ho, Wo); adds dX (N, Cin, H, W) when non-nil, and weight grads when the weights train
    /// (the bias gradient only with `biasGradient`: a caller that already has dY's channel sums adds it itself).
    /// `overwriteInput`: dX is a fresh buffer to overwrite rather than add into. `norm` as in forward.
    func backward(_ ws: WeightSource, _ x: UnsafePointer<Float>, _ d: Dims, dY: UnsafePointer<Float>,
                  dX: UnsafeMutablePointer<Float>?, scratch: BumpArena, biasGradient: Bool = true,
                  overwriteInput: Bool = false, norm: NormalizedInput? = nil) {
        if dX == nil && !ws.trainable { return }
        let s = shape(d, ws.precision)
        let mark = scratch.mark()
        Conv2D.backward(s, x: x, weight: ws.p(weight), dY: dY, dX: dX, dWeight: ws.g(weight),
                        dBias: biasGradient ? ws.g(bias) : nil, workspace: scratch.take(s.workspaceCount),
                        overwriteInput: overwriteInput, norm: norm)
        scratch.release(to: mark)
    }
}

extension LinearParams {
    /// x: (N, In) -> y: (N, Out), overwritten.
    func forward(_ ws: WeightSource, batch: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        Linear.forward(batch: batch, inFeatures: inFeatures, outFeatures: outFeatures, x: x, weight: ws.p(weight),
                       bias: ws.p(bias), y: y)
    }
    /// dY: (N, Out); adds dX (N, In) when non-nil, and weight grads when the weights train.
    func backward(_ ws: WeightSource, batch: Int, _ x: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                  dX: UnsafeMutablePointer<Float>?) {
        if dX == nil && !ws.trainable { return }
        Linear.backward(batch: batch, inFeatures: inFeatures, outFeatures: outFeatures, x: x, weight: ws.p(weight),
                        dY: dY, dX: dX, dWeight: ws.g(weight), dBias: ws.g(bias))
    }
}

extension NormParams {
    func shape(_ d: Dims) -> GroupNormShape {
        GroupNormShape(batch: d.n, channels: channels, spatial: d.spatial, groups: groups)
    }
}

/// A conv used as a whole layer: the UNet's conv_in, Downsample.
final class ConvLayer: Layer {
    let conv: ConvParams
    private var x: UnsafeMutablePointer<Float>?
    private var dims = Dims(n: 0, c: 0, h: 0, w: 0)
    init(_ conv: ConvParams) { self.conv = conv }
    func outputDims(_ input: Dims) -> Dims { conv.outputDims(input) }
    func forward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                 into slot: OutputSlot?) -> UnsafeMutablePointer<Float> {
        self.x = x; dims = d
        let y = slot?.pointer ?? ctx.arenas.acts.take(outputDims(d).count)
        conv.forward(ctx.weights, x, d, into: y, scratch: ctx.arenas.acts, yStride: slot?.sampleStride)
        return y
    }
    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, overwrite: Bool,
                  _ ctx: LayerContext) {
        conv.backward(ctx.weights, x!, dims, dY: dOut, dX: dX, scratch: ctx.arenas.grads, overwriteInput: overwrite)
    }
}

/// Nearest 2x upsampling then a 3x3 conv.
final class UpsampleLayer: Layer {
    let conv: ConvParams
    private var up: UnsafeMutablePointer<Float>?
    private var dims = Dims(n: 0, c: 0, h: 0, w: 0)
    init(_ conv: ConvParams) { self.conv = conv }
    func outputDims(_ d: Dims) -> Dims { Dims(n: d.n, c: conv.outChannels, h: 2 * d.h, w: 2 * d.w) }
    func forward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                 into slot: OutputSlot?) -> UnsafeMutablePointer<Float> {
        dims = d
        let upDims = Dims(n: d.n, c: d.c, h: 2 * d.h, w: 2 * d.w)
        let acts = ctx.arenas.acts
        let y = slot?.pointer ?? acts.take(outputDims(d).count)
        let keep = ctx.saveForWeights
        let mark = acts.mark()
        let up = keep ? acts.take(upDims.count) : nil
        let scratchMark = acts.mark()
        let u = up ?? acts.take(upDims.count)
        Upsample2x.forward(batch: d.n, channels: d.c, height: d.h, width: d.w, x: x, y: u)
        conv.forward(ctx.weights, u, upDims, into: y, scratch: acts, yStride: slot?.sampleStride)
        self.up = up
        acts.release(to: keep ? scratchMark : mark)
        return y
    }
    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, overwrite: Bool,
                  _ ctx: LayerContext) {
        let d = dims, upDims = Dims(n: d.n, c: d.c, h: 2 * d.h, w: 2 * d.w)
        let grads = ctx.arenas.grads
        let mark = grads.mark()
        let dUp = dX == nil ? nil : grads.take(upDims.count)
        // With frozen weights the conv's input is never read, so `up` may be absent.
        conv.backward(ctx.weights, up ?? dOut, upDims, dY: dOut, dX: dUp, scratch: grads, overwriteInput: true)
        if let dX, let dUp {
            Upsample2x.backward(batch: d.n, channels: d.c, height: d.h, width: d.w, dY: dUp, dX: dX,
                                overwrite: overwrite)
        }
        grads.release(to: mark)
    }
}

/// A sequence of layers (one `input_blocks.k`, `middle` or `output_blocks.k`).
final class Block {
    let layers: [Layer]
    private var inputDims: [Dims] = []
    init(_ layers: [Layer]) { self.layers = layers }

    func outputDims(_ d: Dims) -> Dims { layers.reduce(d) { $1.outputDims($0) } }

    /// x: (d) -> the block's output, into `slot` when given (only the last layer writes there).
    func forward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                 into slot: OutputSlot? = nil) -> UnsafeMutablePointer<Float> {
        var h = x, dims = d
        inputDims.removeAll(keepingCapacity: true)
        for (i, layer) in layers.enumerated() {
            inputDims.append(dims)
            h = layer.forward(h, dims, ctx, into: i == layers.count - 1 ? slot : nil)
            dims = layer.outputDims(dims)
        }
        return h
    }

    /// dOut: the block output's gradient; adds into dX (block input) when non-nil, or overwrites it with
    /// `overwrite`.
    func backward(_ dOut: UnsafeMutablePointer<Float>, dX: UnsafeMutablePointer<Float>?, overwrite: Bool = false,
                  _ ctx: LayerContext) {
        let grads = ctx.arenas.grads
        let mark = grads.mark()
        var d = dOut
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            // inner gradients are fresh buffers, each written once by its layer: no zero fill
            let target = i == 0 ? dX : grads.take(inputDims[i].count)
            layers[i].backward(d, dX: target, overwrite: i == 0 ? overwrite : true, ctx)
            guard let next = target else { break }
            d = next
        }
        grads.release(to: mark)
    }
}
