// `input_blocks` and `middle`: the part of the UNet that the ControlNet copies. Both networks build it with the
// same code, so names, shapes and order agree by construction.
import Kernels

final class Encoder {
    let inputBlocks: [Block]
    let middle: Block
    /// Output channels of every input block (the skips, and the zero convs' widths).
    let blockChannels: [Int]
    let middleChannels: Int

    init(_ table: inout ParameterTable, config c: ModelConfig) {
        let C = c.modelChannels, E = c.embedDim, G = c.normGroups
        var blocks = [Block([ConvLayer(ConvParams(&table, "input_blocks.0.0.conv", c.inChannels, C))])]
        var chans = [C], ch = C
        for (level, mult) in c.channelMult.enumerated() {
            for _ in 0..<c.numResBlocks {
                let name = "input_blocks.\(blocks.count)"
                var layers: [Layer] = [ResBlockLayer(&table, name + ".0", ch, mult * C, embedDim: E, groups: G)]
                ch = mult * C
                if c.attentionLevels.contains(level) {
                    layers.append(AttentionLayer(&table, name + ".1", ch, heads: c.numHeads, groups: G))
                }
                blocks.append(Block(layers)); chans.append(ch)
            }
            if level != c.channelMult.count - 1 {
                let name = "input_blocks.\(blocks.count).0.conv"
                blocks.append(Block([ConvLayer(ConvParams(&table, name, ch, ch, stride: 2))])); chans.append(ch)
            }
        }
        middle = Block([
            ResBlockLayer(&table, "middle.0", ch, ch, embedDim: E, groups: G),
            AttentionLayer(&table, "middle.1", ch, heads: c.numHeads, groups: G),
            ResBlockLayer(&table, "middle.2", ch, ch, embedDim: E, groups: G),
        ])
        inputBlocks = blocks; blockChannels = chans; middleChannels = ch
    }

    struct Outputs {
        var blocks: [UnsafeMutablePointer<Float>] = []    // fp32; empty when kept compactly
        var halfBlocks: [UnsafeMutablePointer<UInt16>] = []  // bf16 (compact forward)
        var dims: [Dims] = []
        var middle: UnsafeMutablePointer<Float>
        var middleDims: Dims
    }

    /// x: (N, in_channels, S, S). `afterFirst`, when given, is called on input block 0's output (N, C, S, S) before
    /// the next block reads it (the ControlNet adds its hint features there).
    func forward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                 afterFirst: ((UnsafeMutablePointer<Float>, Dims) -> Void)? = nil) -> Outputs {
        if let turnArena = ctx.compactEncoderTurns, afterFirst == nil { return compactForward(x, d, ctx, turnArena) }
        var outs: [UnsafeMutablePointer<Float>] = [], dims: [Dims] = []
        var h = x, hd = d
        for (k, block) in inputBlocks.enumerated() {
            h = block.forward(h, hd, ctx)
            hd = block.outputDims(hd)
            if k == 0, let afterFirst { afterFirst(h, hd) }
            outs.append(h); dims.append(hd)
        }
        let m = middle.forward(h, hd, ctx)
        return Outputs(blocks: outs, dims: dims, middle: m, middleDims: middle.outputDims(hd))
    }

    /// A frozen encoder that no backward crosses, in a compact (bf16) run: each block's output is kept only as a
    /// bf16 copy for the decoder's concatenation (the skip's conv operands are bf16 anyway), while the fp32 outputs
    /// that the next block reads take turns in two buffers of `turnArena` (the idle gradient arena), released
    /// before returning. The middle block's output stays fp32: the decoder starts from it.
    private func compactForward(_ x: UnsafeMutablePointer<Float>, _ d: Dims, _ ctx: LayerContext,
                                _ turnArena: BumpArena) -> Outputs {
        var dims: [Dims] = [], od = d
        for block in inputBlocks { od = block.outputDims(od); dims.append(od) }
        let mark = turnArena.mark()
        defer { turnArena.release(to: mark) }
        let widest = dims.map(\.count).max() ?? 0
        let turns = [turnArena.take(widest), turnArena.take(widest)]
        var halves: [UnsafeMutablePointer<UInt16>] = []
        var h = x, hd = d
        for (k, block) in inputBlocks.enumerated() {
            let half = CompactActivations.take(dims[k].count, ctx.arenas.acts)
            h = block.forward(h, hd, ctx, into: OutputSlot(pointer: turns[k % 2], sampleStride: dims[k].count / d.n))
            BF16Buffer.store(count: dims[k].count, h, into: half)
            halves.append(half); hd = dims[k]
        }
        let m = middle.forward(h, hd, ctx)
        return Outputs(halfBlocks: halves, dims: dims, middle: m, middleDims: middle.outputDims(hd))
    }

    /// dBlocks[k]: the gradient at input block k's output, holding every contribution from outside the encoder
    /// (skips, zero convs); the chain through the encoder is added here, in reverse. Block 0's input (the image)
    /// gets no gradient.
    func backward(dBlocks: [UnsafeMutablePointer<Float>], dMiddle: UnsafeMutablePointer<Float>, _ ctx: LayerContext) {
        middle.backward(dMiddle, dX: dBlocks[dBlocks.count - 1], ctx)
        for k in stride(from: inputBlocks.count - 1, through: 0, by: -1) {
            inputBlocks[k].backward(dBlocks[k], dX: k > 0 ? dBlocks[k - 1] : nil, ctx)
        }
    }
}
