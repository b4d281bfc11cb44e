// How bf16 runs keep the activations backward needs in less memory (Precision.swift). fp32 keeps every activation
// as it always did (full speed, bit-exact); bf16 rounds conv operands anyway, so it can also hold, without losing
// more than its own rounding:
//   - a ResBlock's conv1 output h in bf16 (written as a copy at the end of forward; the fp32 h is a temporary):
//     only the GroupNorm backward (and, when weights train, the recomputed silu(norm2(h))) read it, one sample at
//     a time widened into a small scratch;
//   - nothing of a trainable ResBlock's silu(norm(.)) conv inputs: the weight gradients recompute them;
//   - a frozen ResBlock's input x in bf16 (only norm1's backward reads it), so the frozen decoder's fp32
//     concatenations take turns in two buffers instead of one per block (UNet.forward);
//   - the frozen encoder's block outputs (the decoder's skips) in bf16, the fp32 ones taking turns
//     (Encoder.compactForward); both sets of turns live in the gradient arena, idle during forward. Every bf16
//     forward, inference included, rounds the skips this way, so all stay bit-identical;
//   - attention's qkv in bf16 and no probabilities: backward recomputes them head by head (AttentionLayer).
// At scale64 batch 16 this took the activation arena from 645 to 425 MB (peak RSS 1054 -> 833 MB).
// Everything else that bf16 saves over fp32 comes from layouts both precisions share (ControlResiduals.compute,
// the hint features as temporaries, gradient slots reused in backward), which change no value.
import Kernels

enum CompactActivations {
    /// Whether layers working in `precision` keep their saved activations compactly.
    static func enabled(_ precision: Precision) -> Bool { precision == .bf16 }

    /// Room for `count` bf16 values in `arena` (which counts floats).
    static func take(_ count: Int, _ arena: BumpArena) -> UnsafeMutablePointer<UInt16> {
        UnsafeMutableRawPointer(arena.take((count + 1) / 2)).assumingMemoryBound(to: UInt16.self)
    }

    /// GroupNorm+SiLU backward with x (N, C, HW) held in bf16: as GroupNorm.backwardSiLU, sample by sample, each
    /// sample widened into a scratch of (C HW) floats taken from and released to `arena`.
    static func groupNormBackward(_ s: GroupNormShape, x: UnsafePointer<UInt16>, gamma: UnsafePointer<Float>,
                                  beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                  dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                                  dGamma: UnsafeMutablePointer<Float>?, dBeta: UnsafeMutablePointer<Float>?,
                                  overwriteInput: Bool = false, arena: BumpArena) {
        if dX == nil && dGamma == nil && dBeta == nil { return }
        let per = s.channels * s.spatial, g = s.groups
        let mark = arena.mark()
        let sample = arena.take(per)
        let one = GroupNormShape(batch: 1, channels: s.channels, spatial: s.spatial, groups: g, eps: s.eps)
        for i in 0..<s.batch {
            BF16Buffer.load(count: per, x + i * per, into: sample)
            GroupNorm.backwardSiLU(one, x: sample, gamma: gamma, beta: beta, mean: mean + i * g, rstd: rstd + i * g,
                                   dY: dY + i * per, dX: dX.map { $0 + i * per }, dGamma: dGamma, dBeta: dBeta,
                                   overwriteInput: overwriteInput)
        }
        arena.release(to: mark)
    }

    /// y (N, C, HW) = silu(groupnorm(x)) with x held in bf16, sample by sample (statistics recomputed from the
    /// bf16 values into scratch).
    static func groupNormForwardSiLU(_ s: GroupNormShape, x: UnsafePointer<UInt16>, gamma: UnsafePointer<Float>,
                                     beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, arena: BumpArena) {
        let per = s.channels * s.spatial
        let mark = arena.mark()
        let sample = arena.take(per), stats = arena.take(2 * s.groups)
        let one = GroupNormShape(batch: 1, channels: s.channels, spatial: s.spatial, groups: s.groups, eps: s.eps)
        for i in 0..<s.batch {
            BF16Buffer.load(count: per, x + i * per, into: sample)
            GroupNorm.forwardSiLU(one, x: sample, gamma: gamma, beta: beta, y: y + i * per, mean: stats,
                                  rstd: stats + s.groups)
        }
        arena.release(to: mark)
    }
}
