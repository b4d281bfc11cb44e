// GroupNorm over (N, C, H*W), alone and fused with the SiLU that follows it in every ResBlock and the output
// head. The arithmetic is in CKernels (built per instruction set; see CKernels.h): two-pass statistics like
// PyTorch's (biased variance), and a fused backward that recomputes the pre-activation from x, mean and rstd, so
// only x, mean, rstd are stored. The Double references are in GroupNormReference.swift.
import CKernels

public struct GroupNormShape: Sendable, Hashable {
    public var batch, channels, spatial, groups: Int  // spatial = H*W
    public var eps: Float

    public init(batch: Int, channels: Int, spatial: Int, groups: Int, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "GroupNorm: \(channels) channels not divisible by \(groups) groups")
        self.batch = batch; self.channels = channels; self.spatial = spatial; self.groups = groups; self.eps = eps
    }

    public var channelsPerGroup: Int { channels / groups }
    /// Elements in one (sample, group): the count every mean and variance is taken over.
    public var groupSize: Int { channelsPerGroup * spatial }
}

/// silu(groupnorm(x)) as a Winograd conv reads it, one channel plane at a time into L1, instead of a normalised
/// copy of x written out and read back (the copy was a write and a read of the activation per ResBlock norm; its
/// backward never needed it). From `GroupNorm.statisticsSiLU`: mean (N, G), scale (N, C) = rstd x gamma, beta (C).
/// Each plane has the bits `forwardSiLU` gives it (the same C code).
public struct NormalizedInput {
    public let shape: GroupNormShape
    public let mean: UnsafePointer<Float>, scale: UnsafePointer<Float>, beta: UnsafePointer<Float>

    public init(_ shape: GroupNormShape, mean: UnsafePointer<Float>, scale: UnsafePointer<Float>,
                beta: UnsafePointer<Float>) {
        self.shape = shape; self.mean = mean; self.scale = scale; self.beta = beta
    }

    /// Channel c of sample n: x (spatial), that plane of the raw input -> y (spatial).
    @inline(__always)
    func plane(sample n: Int, channel c: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let s = shape
        ck_groupnorm_silu_plane(x, s.spatial, mean[n * s.groups + c / s.channelsPerGroup], scale[n * s.channels + c],
                                beta[c], y)
    }

    /// The whole normalised tensor (N, C, HW) into y: for a conv that cannot normalise as it reads.
    public func materialize(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        let hw = shape.spatial
        for n in 0..<shape.batch {
            for c in 0..<shape.channels {
                let o = (n * shape.channels + c) * hw
                plane(sample: n, channel: c, x + o, into: y + o)
            }
        }
    }
}

public enum GroupNorm {
    /// forwardSiLU's statistics without its output: mean, rstd (N, G) as forwardSiLU saves them (for backward),
    /// scale (N, C); the activation itself is computed where it is read (NormalizedInput).
    public static func statisticsSiLU(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                      beta: UnsafePointer<Float>, mean: UnsafeMutablePointer<Float>,
                                      rstd: UnsafeMutablePointer<Float>,
                                      scale: UnsafeMutablePointer<Float>) -> NormalizedInput {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        ck_groupnorm_statistics(x, gamma, mean, rstd, scale, s.batch, s.channels, s.spatial, s.groups, s.eps)
        return NormalizedInput(s, mean: mean, scale: scale, beta: beta)
    }

    /// x (N, C, HW), gamma/beta (C) -> y (N, C, HW); saves mean, rstd (N, G).
    public static func forward(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                               beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        ck_groupnorm_forward(x, gamma, beta, y, mean, rstd, s.batch, s.channels, s.spatial, s.groups, s.eps, 0)
    }

    /// y = silu(groupnorm(x)); shapes as `forward`.
    public static func forwardSiLU(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                   beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                   mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        ck_groupnorm_forward(x, gamma, beta, y, mean, rstd, s.batch, s.channels, s.spatial, s.groups, s.eps, 1)
    }

    /// dY (N, C, HW); adds dX (N, C, HW), dGamma (C), dBeta (C) when non-nil (dX is overwritten instead with
    /// `overwriteInput`). mean, rstd (N, G) from forward.
    public static func backward(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                dBeta: UnsafeMutablePointer<Float>?, overwriteInput: Bool = false) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        // beta only enters through SiLU's pre-activation
        ck_groupnorm_backward(x, gamma, nil, mean, rstd, dY, dX, dGamma, dBeta, nil, s.batch, s.channels,
                              s.spatial, s.groups, 0, overwriteInput ? 1 : 0)
    }

    /// Backward of y = silu(groupnorm(x)): dY (N, C, HW); adds dX, dGamma, dBeta as `backward` (dX is
    /// overwritten instead with `overwriteInput`: a fresh buffer needs no zero fill).
    public static func backwardSiLU(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                    beta: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                    rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                    dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                    dBeta: UnsafeMutablePointer<Float>?, overwriteInput: Bool = false) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        if dX == nil && dGamma == nil && dBeta == nil { return }
        // dZ = dY silu'(z) of one group at a time (stack-sized for the model's shapes): the sigmoid is evaluated once.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: s.groupSize) { buffer in
            ck_groupnorm_backward(x, gamma, beta, mean, rstd, dY, dX, dGamma, dBeta, buffer.baseAddress, s.batch,
                                  s.channels, s.spatial, s.groups, 1, overwriteInput ? 1 : 0)
        }
    }
}
