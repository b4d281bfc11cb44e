// Multi-head self-attention over the H*W tokens of an NCHW feature map, forward and backward, with per-head
// GEMMs straight on the channel-major (d, T) slices of qkv (no transposes or copies). The layout follows
// ARCHITECTURE.md: q, k, v are the channel blocks [0, C), [C, 2C), [2C, 3C) of qkv, head h owns channels
// [h*d, (h+1)*d) of each.

public struct AttentionShape: Sendable, Hashable {
    public var batch, channels, heads, tokens: Int  // tokens = H*W
    /// Of the four products per head (Precision.swift); the softmax is fp32 either way.
    public var precision: Precision

    public init(batch: Int, channels: Int, heads: Int, tokens: Int, precision: Precision = .fp32) {
        precondition(heads > 0 && channels % heads == 0, "Attention: \(channels) channels not divisible by \(heads) heads")
        self.batch = batch; self.channels = channels; self.heads = heads; self.tokens = tokens
        self.precision = precision
    }

    public var headDim: Int { channels / heads }
    /// Floats of probs: (N, heads, T, T).
    public var probsCount: Int { batch * heads * tokens * tokens }
    /// Scratch for forward and backward: one head's probabilities (T, T) when they are not saved, and backward's
    /// dProbs (T, T).
    public var workspaceCount: Int { 2 * tokens * tokens }
}

public enum Attention {
    /// qkv (N, 3C, T) -> a (N, C, T), overwritten; probs (N, heads, T, T), rows = queries, saved for backward,
    /// or nil to keep only one head's at a time in the workspace (backward then recomputes them).
    /// workspace: (s.workspaceCount).
    public static func forward(_ s: AttentionShape, qkv: UnsafePointer<Float>, a: UnsafeMutablePointer<Float>,
                               probs: UnsafeMutablePointer<Float>?, workspace: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.attention)
        defer { PhaseProfiler.shared.leave(phase) }
        let t = s.tokens, d = s.headDim, c = s.channels
        let scale = Float(1 / Double(d).squareRoot())
        for n in 0..<s.batch {
            for h in 0..<s.heads {
                let q = qkv + (n * 3 * c + h * d) * t, k = q + c * t, v = q + 2 * c * t
                let p = probs.map { $0 + (n * s.heads + h) * t * t } ?? workspace
                probabilities(s, q: q, k: k, scale: scale, into: p)
                // a_h (d, T) = v (d, T) p^T
                Gemm.product(s.precision, transA: false, transB: true, m: d, n: t, k: t, alpha: 1,
                           a: v, lda: t, b: p, ldb: t, beta: 0, c: a + (n * c + h * d) * t, ldc: t)
            }
        }
    }

    /// p (T, T) = softmax(scale q^T k) of one head, rows = queries: the same calls in forward and in backward's
    /// recomputation, so the same bits.
    private static func probabilities(_ s: AttentionShape, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                      scale: Float, into p: UnsafeMutablePointer<Float>) {
        let t = s.tokens
        Gemm.product(s.precision, transA: true, transB: false, m: t, n: t, k: s.headDim, alpha: scale,
                     a: q, lda: t, b: k, ldb: t, beta: 0, c: p, ldc: t)
        softmaxRows(p, rows: t, cols: t)
    }

    /// dA (N, C, T) -> dQKV (N, 3C, T) +=; qkv as given to forward, probs as saved by it (nil: recomputed from
    /// qkv, head by head). workspace: (s.workspaceCount).
    public static func backward(_ s: AttentionShape, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>?,
                                dA: UnsafePointer<Float>, dQKV: UnsafeMutablePointer<Float>,
                                workspace: UnsafeMutablePointer<Float>) {
        let phase = PhaseProfiler.shared.enter(.attention)
        defer { PhaseProfiler.shared.leave(phase) }
        let t = s.tokens, d = s.headDim, c = s.channels
        let scale = Float(1 / Double(d).squareRoot())
        let dS = workspace  // (T, T): dProbs, then in place dScores
        let recomputed = workspace + t * t  // (T, T): this head's probabilities when forward kept none
        for n in 0..<s.batch {
            for h in 0..<s.heads {
                let q = qkv + (n * 3 * c + h * d) * t, k = q + c * t, v = q + 2 * c * t
                let dq = dQKV + (n * 3 * c + h * d) * t, dk = dq + c * t, dv = dq + 2 * c * t
                let p: UnsafePointer<Float>
                if let probs {
                    p = probs + (n * s.heads + h) * t * t
                } else {
                    probabilities(s, q: q, k: k, scale: scale, into: recomputed)
                    p = UnsafePointer(recomputed)
                }
                let da = dA + (n * c + h * d) * t
                // dv (d, T) += da (d, T) p (T, T)
                Gemm.product(s.precision, transA: false, transB: false, m: d, n: t, k: t, alpha: 1,
                           a: da, lda: t, b: p, ldb: t, beta: 1, c: dv, ldc: t)
                // dP (T, T) = da^T v
                Gemm.product(s.precision, transA: true, transB: false, m: t, n: t, k: d, alpha: 1,
                           a: da, lda: t, b: v, ldb: t, beta: 0, c: dS, ldc: t)
                // softmax backward per query row: dS = p (dP - sum_j p dP)
                for row in 0..<t {
                    let pr = p + row * t, dr = dS + row * t
                    var dot: Float = 0
                    for j in 0..<t { dot += pr[j] * dr[j] }
                    for j in 0..<t { dr[j] = pr[j] * (dr[j] - dot) }
                }
                // scores = scale q^T k: dq (d, T) += scale k dS^T, dk (d, T) += scale q dS
                Gemm.product(s.precision, transA: false, transB: true, m: d, n: t, k: t, alpha: scale,
                           a: k, lda: t, b: dS, ldb: t, beta: 1, c: dq, ldc: t)
                Gemm.product(s.precision, transA: false, transB: false, m: d, n: t, k: t, alpha: scale,
                           a: q, lda: t, b: dS, ldb: t, beta: 1, c: dk, ldc: t)
            }
        }
    }

    /// In-place numerically stable softmax of each row of x (rows, cols), rows contiguous: subtract the row
    /// max, exponentiate the whole block in one vector sweep (one partial tail instead of one per row),
    /// normalise by the row sums.
    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows {
            let row = x + r * cols
            var mv = Vec(repeating: -.infinity)
            var j = 0
            while j + vecWidth <= cols {
                let v = loadVec(row + j)
                mv = mv.replacing(with: v, where: v .> mv)
                j += vecWidth
            }
            var mx = mv.max()
            while j < cols { mx = max(mx, row[j]); j += 1 }
            for i in 0..<cols { row[i] -= mx }
        }
        FastMath.exp(count: rows * cols, x: x, y: x)
        for r in 0..<rows {
            let row = x + r * cols
            var acc = Vec(repeating: 0)
            var j = 0
            while j + vecWidth <= cols {
                acc += loadVec(row + j)
                j += vecWidth
            }
            var total = acc.sum()
            while j < cols { total += row[j]; j += 1 }
            let inv = 1 / total
            for i in 0..<cols { row[i] *= inv }
        }
    }
}
