// How bf16 runs keep the activations backward needs in less memory (Precision.swift: bf16 trades a few percent of
// step time for it; fp32 keeps every activation as it always did, at full speed and bit-exact):
//   - tensors only a GroupNorm backward reads later (a frozen decoder ResBlock's input and conv1 output) are
//     narrowed to bf16 in place at the end of forward and the freed upper half of their pages given back; the
//     GroupNorm backward widens them one sample at a time into a small scratch;
//   - a trainable ResBlock's silu(norm(.)) conv inputs are recomputed in backward, not kept (ResBlockLayer);
//   - tensors dead before the step ends (the ControlNet's residuals once added, a frozen encoder's outputs once
//     concatenated, the hint features once added) give their pages back (BumpArena.discard), and so do the
//     gradient temporaries after backward, which would otherwise sit under the next forward's peak.
// Given-back pages are faulted in again by the next step (~0.2 ms per MB here): the few percent bf16 pays.
// The rounding of a narrowed tensor is bf16's, like the products' operands, so it stays within bf16's tolerance.
import Kernels

enum CompactActivations {
    /// Whether layers working in `precision` keep their saved activations compactly.
    static func enabled(_ precision: Precision) -> Bool { precision == .bf16 }

    /// x (count floats) -> count bf16 in x's first half, in place; the pages of the second half go back to the
    /// system. Returns the bf16 view.
    static func narrow(_ x: UnsafeMutablePointer<Float>, count: Int, arena: BumpArena) -> UnsafeMutablePointer<UInt16> {
        let half = UnsafeMutableRawPointer(x).assumingMemoryBound(to: UInt16.self)
        BF16Buffer.store(count: count, x, into: half)
        let used = (count + 1) / 2
        arena.discard(x + used, count: count - used)
        return half
    }

    /// GroupNorm(+SiLU when `silu`) backward with x (N, C, HW) held in bf16 (`narrow`): as GroupNorm.backward /
    /// backwardSiLU, sample by sample, each sample widened into `scratch` ((C HW) floats, taken and released here).
    static func groupNormBackward(_ s: GroupNormShape, silu: Bool, x: UnsafePointer<UInt16>,
                                  gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                  dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                  dBeta: UnsafeMutablePointer<Float>?, overwriteInput: Bool = false,
                                  arena: BumpArena) {
        if dX == nil && dGamma == nil && dBeta == nil { return }
        let per = s.channels * s.spatial, g = s.groups
        let mark = arena.mark()
        let sample = arena.take(per)
        let one = GroupNormShape(batch: 1, channels: s.channels, spatial: s.spatial, groups: g, eps: s.eps)
        for i in 0..<s.batch {
            BF16Buffer.load(count: per, x + i * per, into: sample)
            if silu {
                GroupNorm.backwardSiLU(one, x: sample, gamma: gamma, beta: beta, mean: mean + i * g, rstd: rstd + i * g,
                                       dY: dY + i * per, dX: dX.map { $0 + i * per }, dGamma: dGamma, dBeta: dBeta,
                                       overwriteInput: overwriteInput)
            } else {
                precondition(!overwriteInput, "GroupNorm.backward adds into dX")
                GroupNorm.backward(one, x: sample, gamma: gamma, mean: mean + i * g, rstd: rstd + i * g,
                                   dY: dY + i * per, dX: dX.map { $0 + i * per }, dGamma: dGamma, dBeta: dBeta)
            }
        }
        arena.release(to: mark)
    }
}
