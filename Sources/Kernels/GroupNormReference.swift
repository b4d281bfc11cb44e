// Plain-loop GroupNorm and GroupNorm+SiLU in Double: the references GroupNorm.swift is tested against. The
// backward is written element by element from its definition (means of dxhat and dxhat*xhat over the group),
// not from the per-channel sums the fast kernel uses.

extension GroupNorm {
    /// x (N, C, HW), gamma/beta (C) -> y (N, C, HW), mean/rstd (N, G).
    public static func forwardNaive(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                    beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                    mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let cpg = s.channels / s.groups, hw = s.spatial, count = cpg * hw
        for n in 0..<s.batch {
            for g in 0..<s.groups {
                let base = (n * s.channels + g * cpg) * hw
                var sum = 0.0
                for i in 0..<count { sum += Double(x[base + i]) }
                let m = sum / Double(count)
                var sq = 0.0
                for i in 0..<count { sq += (Double(x[base + i]) - m) * (Double(x[base + i]) - m) }
                let r = 1 / (sq / Double(count) + Double(s.eps)).squareRoot()
                mean[n * s.groups + g] = Float(m)
                rstd[n * s.groups + g] = Float(r)
                for i in 0..<count {
                    let c = g * cpg + i / hw
                    y[base + i] = Float((Double(x[base + i]) - m) * r * Double(gamma[c]) + Double(beta[c]))
                }
            }
        }
    }

    /// dY (N, C, HW); adds dX (N, C, HW), dGamma (C), dBeta (C) when non-nil.
    public static func backwardNaive(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                     mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                     dY: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                                     dGamma: UnsafeMutablePointer<Float>?, dBeta: UnsafeMutablePointer<Float>?) {
        let cpg = s.channels / s.groups, hw = s.spatial, count = cpg * hw
        for n in 0..<s.batch {
            for g in 0..<s.groups {
                let base = (n * s.channels + g * cpg) * hw
                let m = Double(mean[n * s.groups + g]), r = Double(rstd[n * s.groups + g])
                var xhat = [Double](repeating: 0, count: count), dxhat = xhat
                for i in 0..<count {
                    let c = g * cpg + i / hw
                    xhat[i] = (Double(x[base + i]) - m) * r
                    dxhat[i] = Double(dY[base + i]) * Double(gamma[c])
                    dGamma?[c] += Float(Double(dY[base + i]) * xhat[i])
                    dBeta?[c] += dY[base + i]
                }
                guard let dX else { continue }
                var meanD = 0.0, meanDX = 0.0
                for i in 0..<count { meanD += dxhat[i]; meanDX += dxhat[i] * xhat[i] }
                meanD /= Double(count); meanDX /= Double(count)
                for i in 0..<count { dX[base + i] += Float(r * (dxhat[i] - meanD - xhat[i] * meanDX)) }
            }
        }
    }

    /// y = silu(groupnorm(x)) composed from the two references.
    public static func forwardSiLUNaive(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                        beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let total = s.batch * s.channels * s.spatial
        forwardNaive(s, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd)
        SiLU.forwardNaive(count: total, x: y, y: y)
    }

    /// Backward of silu(groupnorm(x)): recomputes z = groupnorm(x) in Double, dZ = dY silu'(z), then `backwardNaive`.
    public static func backwardSiLUNaive(_ s: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                         beta: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                         rstd: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                                         dX: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?,
                                         dBeta: UnsafeMutablePointer<Float>?) {
        let cpg = s.channels / s.groups, hw = s.spatial
        let total = s.batch * s.channels * hw
        var z = [Float](repeating: 0, count: total)
        for i in 0..<total {
            let c = (i / hw) % s.channels, ng = (i / hw) / s.channels * s.groups + c / cpg
            z[i] = Float((Double(x[i]) - Double(mean[ng])) * Double(rstd[ng]) * Double(gamma[c]) + Double(beta[c]))
        }
        var dZ = [Float](repeating: 0, count: total)
        SiLU.backwardNaive(count: total, x: z, dY: dY, dX: &dZ)
        backwardNaive(s, x: x, gamma: gamma, mean: mean, rstd: rstd, dY: dZ, dX: dX, dGamma: dGamma, dBeta: dBeta)
    }
}
