// The mixed-precision switch (prototype): which arithmetic the convolutions' and attention's matrix products use.
// fp32 (the default) is exactly the OpenBLAS sgemm path as before; bf16 rounds both operands of each such product
// to bf16 and accumulates in fp32 (Gemm.sbgemm). Everything else (GroupNorm statistics, softmax, the time
// embedding's linears, the loss, master weights and AdamW) stays fp32 whatever the switch says.
public enum MatmulPrecision: String, Sendable, CaseIterable {
    case fp32, bf16

    /// Process-wide; set once before training (the kernels read it on every call, from the training thread).
    nonisolated(unsafe) public static var current: MatmulPrecision = .fp32
}

extension Gemm {
    /// A conv's or attention's matrix product in the current MatmulPrecision: `sgemm` (fp32) or `sbgemm` (bf16).
    @inline(__always)
    public static func mixed(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        if MatmulPrecision.current == .fp32 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
        } else {
            sbgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: beta, c: c, ldc: ldc)
        }
    }
}

/// In bf16 mode, a conv's weight matrices rounded and packed once per call, reused by every chunk's product (the
/// Winograd convs multiply each of their E transformed weight matrices by 10-60 chunks of tiles; repacking them
/// each time would cost ~40% of those small products). nil in fp32 mode, where callers use Gemm.mixed as before.
final class MixedWeights {
    let packs: [BF16PackedA]
    let k: Int
    /// One packed B (k, maxN), filled and consumed right away by `multiply`.
    let scratch: UnsafeMutablePointer<UInt16>

    /// `count` matrices op(A_e) (m, k), A_e at a + e * stride.
    init?(count: Int, transA: Bool, m: Int, k: Int, a: UnsafePointer<Float>, stride: Int, maxN: Int) {
        guard MatmulPrecision.current == .bf16 else { return nil }
        let lda = transA ? m : k
        packs = (0..<count).map { BF16PackedA(transA: transA, m: m, k: k, a: a + $0 * stride, lda: lda) }
        self.k = k
        scratch = .allocate(capacity: BF16PackedB.count(k: k, n: maxN) + 32)
    }

    deinit { scratch.deallocate() }

    /// C (m, n) = A_e B + beta C, B (k, n) row-major with leading dimension ldb (rounded to bf16 on the way).
    func multiply(_ e: Int, n: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>,
                  ldc: Int) {
        let phase = PhaseProfiler.shared.enter(.gemm)
        Gemm.packBF16(transB: false, k: k, n: n, b: b, ldb: ldb, into: scratch)
        PhaseProfiler.shared.leave(phase)
        Gemm.sbgemm(m: packs[e].m, n: n, k: k, alpha: 1, a: packs[e], b: scratch, beta: beta, c: c, ldc: ldc)
    }
}
