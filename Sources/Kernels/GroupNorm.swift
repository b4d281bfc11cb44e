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

public enum GroupNorm {
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

    /// dY (N, C, HW); adds dX (N, C, HW), dGamma (C), dBeta (C) when non-nil. mean, rstd (N, G) from forward.
    public static func backward(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                dBeta: UnsafeMutablePointer<Float>?) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        // beta only enters through SiLU's pre-activation
        ck_groupnorm_backward(x, gamma, nil, mean, rstd, dY, dX, dGamma, dBeta, nil, s.batch, s.channels,
                              s.spatial, s.groups, 0, 0)
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
