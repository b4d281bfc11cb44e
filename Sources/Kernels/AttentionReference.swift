// Plain-loop attention in Double, element by element from the definition: the reference for Attention.swift.

extension Attention {
    /// qkv (N, 3C, T) -> a (N, C, T), probs (N, heads, T, T).
    public static func forwardNaive(_ s: AttentionShape, qkv: UnsafePointer<Float>, a: UnsafeMutablePointer<Float>,
                                    probs: UnsafeMutablePointer<Float>) {
        let t = s.tokens, d = s.headDim, c = s.channels
        let scale = 1 / Double(d).squareRoot()
        func at(_ n: Int, _ channel: Int, _ token: Int) -> Double { Double(qkv[(n * 3 * c + channel) * t + token]) }
        for n in 0..<s.batch {
            for h in 0..<s.heads {
                for i in 0..<t {
                    var scores = [Double](repeating: 0, count: t)
                    for j in 0..<t {
                        var dot = 0.0
                        for e in 0..<d { dot += at(n, h * d + e, i) * at(n, c + h * d + e, j) }
                        scores[j] = dot * scale
                    }
                    let mx = scores.max()!
                    let ex = scores.map { FastMath.expNaive($0 - mx) }
                    let total = ex.reduce(0, +)
                    for j in 0..<t { probs[((n * s.heads + h) * t + i) * t + j] = Float(ex[j] / total) }
                    for e in 0..<d {
                        var sum = 0.0
                        for j in 0..<t { sum += ex[j] / total * at(n, 2 * c + h * d + e, j) }
                        a[(n * c + h * d + e) * t + i] = Float(sum)
                    }
                }
            }
        }
    }

    /// dA (N, C, T) -> dQKV (N, 3C, T) +=, from qkv and the saved probs.
    public static func backwardNaive(_ s: AttentionShape, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                     dA: UnsafePointer<Float>, dQKV: UnsafeMutablePointer<Float>) {
        let t = s.tokens, d = s.headDim, c = s.channels
        let scale = 1 / Double(d).squareRoot()
        func at(_ n: Int, _ channel: Int, _ token: Int) -> Double { Double(qkv[(n * 3 * c + channel) * t + token]) }
        func grad(_ n: Int, _ channel: Int, _ token: Int, _ value: Double) {
            dQKV[(n * 3 * c + channel) * t + token] += Float(value)
        }
        for n in 0..<s.batch {
            for h in 0..<s.heads {
                for i in 0..<t {
                    let p = (0..<t).map { Double(probs[((n * s.heads + h) * t + i) * t + $0]) }
                    // dP[i, j] = sum_e dA[e, i] v[e, j]; dv[e, j] += p[i, j] dA[e, i]
                    var dP = [Double](repeating: 0, count: t)
                    for j in 0..<t {
                        for e in 0..<d {
                            let g = Double(dA[(n * c + h * d + e) * t + i])
                            dP[j] += g * at(n, 2 * c + h * d + e, j)
                            grad(n, 2 * c + h * d + e, j, p[j] * g)
                        }
                    }
                    var dot = 0.0
                    for j in 0..<t { dot += p[j] * dP[j] }
                    for j in 0..<t {
                        let dScore = p[j] * (dP[j] - dot) * scale
                        for e in 0..<d {
                            grad(n, h * d + e, i, dScore * at(n, c + h * d + e, j))
                            grad(n, c + h * d + e, j, dScore * at(n, h * d + e, i))
                        }
                    }
                }
            }
        }
    }
}
