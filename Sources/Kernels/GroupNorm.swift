// GroupNorm over (N, C, H*W), alone and fused with the SiLU that follows it in every ResBlock and the output
// head. Statistics are two-pass (like PyTorch, biased variance): the mean summed in Double lanes, then squared
// deviations from it in Float lanes flushed to Double every 4096 elements.
// The fused backward recomputes the pre-activation from x, mean and rstd, so only x, mean, rstd are stored.

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
        normalise(s, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd, silu: false)
    }

    /// y = silu(groupnorm(x)); shapes as `forward`.
    public static func forwardSiLU(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                   beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                   mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        normalise(s, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd, silu: true)
    }

    /// dY (N, C, HW); adds dX (N, C, HW), dGamma (C), dBeta (C) when non-nil. mean, rstd (N, G) from forward.
    public static func backward(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                dBeta: UnsafeMutablePointer<Float>?) {
        let phase = PhaseProfiler.shared.enter(.norms)
        defer { PhaseProfiler.shared.leave(phase) }
        let gs = s.groupSize
        for ng in 0..<s.batch * s.groups {
            let off = ng * gs
            groupBackward(s, group: ng % s.groups, x: x + off, gamma: gamma, mean: mean[ng], rstd: rstd[ng],
                          dZ: dY + off, dX: dX.map { $0 + off }, dGamma: dGamma, dBeta: dBeta)
        }
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
        let gs = s.groupSize, cpg = s.channelsPerGroup, hw = s.spatial
        // dZ of one group at a time (stack-sized for the model's shapes): the sigmoid is evaluated once.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: gs) { buffer in
            let dZ = buffer.baseAddress!
            for ng in 0..<s.batch * s.groups {
                let off = ng * gs, g = ng % s.groups
                let m = mean[ng], r = rstd[ng]
                var sums = GroupSums()
                // dZ = dY silu'(z) and its two channel sums in one pass (hw is a few thousand at most, so the
                // Float lane sums stay short)
                for cl in 0..<cpg {
                    let c = g * cpg + cl
                    let a = r * gamma[c], b = beta[c]
                    let xs = x + off + cl * hw, dys = dY + off + cl * hw, dzs = dZ + cl * hw
                    var accD = Vec(repeating: 0), accDX = Vec(repeating: 0)
                    var i = 0
                    while i + vecWidth <= hw {
                        let xm = loadVec(xs + i) - m
                        let dz = loadVec(dys + i) * siluDerivative(xm * a + b)
                        storeVec(dz, dzs + i)
                        accD += dz; accDX += dz * xm
                        i += vecWidth
                    }
                    if i < hw {
                        let n = hw - i
                        let xm = loadPartial(xs + i, n) - m
                        let dz = loadPartial(dys + i, n) * siluDerivative(xm * a + b)  // zero past the end
                        storePartial(dz, dzs + i, n)
                        accD += dz; accDX += dz * xm
                    }
                    sums.addChannel(c, sumD: laneSum(accD), sumDX: laneSum(accDX), gamma: gamma, rstd: r,
                                    dGamma: dGamma, dBeta: dBeta)
                }
                if let dX {
                    applyInputGradient(s, group: g, x: x + off, gamma: gamma, mean: m, rstd: r, dZ: dZ, sums: sums,
                                       dX: dX + off, overwrite: overwriteInput)
                }
            }
        }
    }

    // MARK: - shared pieces

    static func normalise(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                          beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                          mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, silu: Bool) {
        let gs = s.groupSize, cpg = s.channelsPerGroup, hw = s.spatial
        for ng in 0..<s.batch * s.groups {
            let off = ng * gs, g = ng % s.groups
            let (m, r) = statistics(x + off, count: gs, eps: s.eps)
            mean[ng] = Float(m)
            rstd[ng] = Float(r)
            for cl in 0..<cpg {
                let c = g * cpg + cl
                // y = (x - m) (r gamma) + beta; subtracting m first keeps digits when |m| >> std
                let a = Float(r * Double(gamma[c])), b = beta[c], mf = Float(m)
                let xs = x + off + cl * hw, ys = y + off + cl * hw
                var i = 0
                while i + vecWidth <= hw {
                    let z = (loadVec(xs + i) - mf) * a + b
                    storeVec(silu ? vsilu(z) : z, ys + i)
                    i += vecWidth
                }
                if i < hw {
                    let z = (loadPartial(xs + i, hw - i) - mf) * a + b
                    storePartial(silu ? z * vsigmoid(z) : z, ys + i, hw - i)
                }
            }
        }
    }

    /// Two-pass mean and 1 / sqrt(biased variance + eps) of x (count).
    static func statistics(_ x: UnsafePointer<Float>, count: Int, eps: Float) -> (mean: Double, rstd: Double) {
        // The mean of x - x[0] (shifted data): its terms are of the size of the spread, not of the mean, so Float
        // lanes lose nothing even when |mean| >> std (a mean of 1000 with spread 0.05 is tested).
        let shift = x[0]
        var shifted = 0.0
        var i = 0
        while i < count {
            let end = min(count, i + 256)
            var acc = Vec(repeating: 0)
            while i + vecWidth <= end { acc += loadVec(x + i) - shift; i += vecWidth }
            shifted += Double(acc.sum())
            while i < end { shifted += Double(x[i] - shift); i += 1 }
        }
        let m = Double(shift) + shifted / Double(count)
        let mf = Float(m)
        var total = 0.0
        var start = 0
        while start < count {
            let end = min(count, start + 4096)
            var acc = Vec(repeating: 0)
            var i = start
            while i + vecWidth <= end {
                let d = loadVec(x + i) - mf
                acc += d * d
                i += vecWidth
            }
            total += laneSum(acc)
            while i < end { let d = Double(x[i]) - m; total += d * d; i += 1 }
            start = end
        }
        let variance = total / Double(count)
        return (m, 1 / (variance + Double(eps)).squareRoot())
    }

    /// One (sample, group): dZ is the gradient w.r.t. the normalised-and-affine output z = xhat gamma + beta.
    /// With xhat = (x - m) r and dxhat = dZ gamma:
    ///   dX = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dGamma += sum dZ xhat,  dBeta += sum dZ.
    /// Per channel only two sums of dZ are needed (sum dZ and sum dZ (x - m)); everything else follows from them.
    static func groupBackward(_ s: GroupNormShape, group g: Int, x: UnsafePointer<Float>,
                              gamma: UnsafePointer<Float>, mean m: Float, rstd r: Float, dZ: UnsafePointer<Float>,
                              dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                              dBeta: UnsafeMutablePointer<Float>?) {
        let cpg = s.channelsPerGroup, hw = s.spatial
        var sums = GroupSums()
        for cl in 0..<cpg {
            let c = g * cpg + cl
            let xs = x + cl * hw, dzs = dZ + cl * hw
            var accD = Vec(repeating: 0), accDX = Vec(repeating: 0)
            var sumD = 0.0, sumDX = 0.0
            var i = 0
            while i < hw {
                // blocks of 4096 keep the Float lane sums short before they are added in Double
                let end = min(hw, i + 4096)
                while i + vecWidth <= end {
                    let d = loadVec(dzs + i)
                    accD += d
                    accDX += d * (loadVec(xs + i) - m)
                    i += vecWidth
                }
                while i < end {
                    sumD += Double(dzs[i]); sumDX += Double(dzs[i]) * (Double(xs[i]) - Double(m))
                    i += 1
                }
                sumD += laneSum(accD); sumDX += laneSum(accDX)
                accD = Vec(repeating: 0); accDX = Vec(repeating: 0)
            }
            sums.addChannel(c, sumD: sumD, sumDX: sumDX, gamma: gamma, rstd: r, dGamma: dGamma, dBeta: dBeta)
        }
        guard let dX else { return }
        applyInputGradient(s, group: g, x: x, gamma: gamma, mean: m, rstd: r, dZ: dZ, sums: sums, dX: dX)
    }

    /// The group-wide sums backward needs, gathered channel by channel (in Double).
    struct GroupSums {
        var dxhat = 0.0, dxhatXhat = 0.0

        /// Channel c's sum dZ and sum dZ (x - m): its affine gradients, and its share of the group sums.
        @inline(__always)
        mutating func addChannel(_ c: Int, sumD: Double, sumDX: Double, gamma: UnsafePointer<Float>, rstd r: Float,
                                 dGamma: UnsafeMutablePointer<Float>?, dBeta: UnsafeMutablePointer<Float>?) {
            let dGammaC = Double(r) * sumDX  // sum dZ xhat
            dBeta?[c] += Float(sumD)
            dGamma?[c] += Float(dGammaC)
            dxhat += Double(gamma[c]) * sumD
            dxhatXhat += Double(gamma[c]) * dGammaC
        }
    }

    /// dX (one group, (Cpg, HW)) += r gamma dZ + (x - m) (-r^2 m2) - r m1, with m1, m2 the group means of dxhat and
    /// dxhat xhat.
    static func applyInputGradient(_ s: GroupNormShape, group g: Int, x: UnsafePointer<Float>,
                                   gamma: UnsafePointer<Float>, mean m: Float, rstd r: Float,
                                   dZ: UnsafePointer<Float>, sums: GroupSums, dX: UnsafeMutablePointer<Float>,
                                   overwrite: Bool = false) {
        let cpg = s.channelsPerGroup, hw = s.spatial
        let count = Double(cpg * hw)
        let m1 = sums.dxhat / count, m2 = sums.dxhatXhat / count
        let bCoef = Float(-Double(r) * Double(r) * m2)
        let cCoef = Float(-Double(r) * m1)
        for cl in 0..<cpg {
            let c = g * cpg + cl
            let aCoef = r * gamma[c]
            let xs = x + cl * hw, dzs = dZ + cl * hw, dxs = dX + cl * hw
            var i = 0
            if overwrite {
                while i + vecWidth <= hw {
                    storeVec(loadVec(dzs + i) * aCoef + (loadVec(xs + i) - m) * bCoef + cCoef, dxs + i)
                    i += vecWidth
                }
                while i < hw { dxs[i] = dzs[i] * aCoef + (xs[i] - m) * bCoef + cCoef; i += 1 }
                continue
            }
            while i + vecWidth <= hw {
                let v = loadVec(dxs + i) + loadVec(dzs + i) * aCoef + (loadVec(xs + i) - m) * bCoef + cCoef
                storeVec(v, dxs + i)
                i += vecWidth
            }
            while i < hw {
                dxs[i] += dzs[i] * aCoef + (xs[i] - m) * bCoef + cCoef
                i += 1
            }
        }
    }
}

/// silu'(z) = s (1 + z (1 - s)), s = sigmoid(z).
@inline(__always)
func siluDerivative(_ z: Vec) -> Vec {
    let s = vsigmoid(z)
    return s * (1 + z * (1 - s))
}
