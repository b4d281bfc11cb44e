// The bf16 matrix multiply (mixed precision): the C micro-kernels of Sources/CKernels/sbgemm*.c behind the same
// signature as Gemm.sgemm, plus pre-packed operands for callers that reuse one (weights: rounded and packed once
// per step), and the naive reference beside them. Operands are rounded to bf16 (nearest even, subnormals to zero)
// and multiplied with fp32 accumulation; every kernel variant gives the same bits (sbgemm.h), so the variant is a
// speed choice only: VDPBF16PS where it is the faster (Zen 4), the FMA emulation elsewhere (e.g. Sapphire Rapids
// without AMX, where VDPBF16PS runs at half the fp32 FMA rate; docs/bf16-kernels.md).
import CKernels

/// Which bf16 GEMM micro-kernel runs: picked by measuring at first use, pinned by CONTROLNET_BF16_KERNEL.
public enum BF16Kernel {
    /// Every variant this build knows: VDPBF16PS, then the FMA emulations (AVX-512, AVX2) and scalar C.
    public static let all = ["avx512bf16", "avx512", "avx2", "generic"]
    public static let environmentVariable = "CONTROLNET_BF16_KERNEL"

    public static var current: String { String(cString: ck_sbgemm_variant()) }
    public static var supported: [String] { all.filter { ck_sbgemm_variant_supported($0) != 0 } }
    /// True when the CPU has bf16 dot-product instructions; without them bf16 runs emulated (same bits) and the
    /// trainer warns that it gains nothing over fp32.
    public static var cpuHasBF16Instructions: Bool { ck_sbgemm_native() != 0 }

    public struct SelectionError: Error, CustomStringConvertible {
        public let requested: String, reason: String
        public var description: String {
            "\(BF16Kernel.environmentVariable)=\(requested): \(reason); use one of "
                + "\(BF16Kernel.supported.joined(separator: ", ")) or auto (the faster on this CPU), or unset it"
        }
    }

    /// Switches every later bf16 GEMM to `name` ("auto": measure and take the faster).
    public static func select(_ name: String) throws(SelectionError) {
        switch ck_sbgemm_select(name) {
        case 0: return
        case -2: throw SelectionError(requested: name, reason: "this CPU cannot run it")
        default: throw SelectionError(requested: name, reason: "unknown bf16 kernel")
        }
    }

    /// GFLOP/s of the 512-bit fp32 FMA and of VDPBF16PS in a register-only loop (0 when the CPU lacks it).
    public static func peakGflops(iterations: Int) -> (fmaGflops: Double, dpbf16Gflops: Double) {
        (ck_peak_gflops(0, iterations), ck_peak_gflops(1, iterations))
    }

    public static func selectFromEnvironment(_ environment: [String: String]) throws(SelectionError) {
        guard let value = environment[environmentVariable], !value.isEmpty else { return }
        try select(value)
    }
}

extension Gemm {
    /// As `sgemm`, with both operands rounded to bf16 and fp32 accumulation. C (m, n) = alpha op(A) op(B) + beta C.
    public static func sbgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                              a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                              c: UnsafeMutablePointer<Float>, ldc: Int) {
        Gemm.instrumented(transA: transA, transB: transB, m: m, n: n, k: k) {
            let status = ck_sbgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            precondition(status == 0, "sbgemm: cannot allocate its packing buffers (\(m)x\(n)x\(k))")
        }
    }

    /// C (m, n) = alpha A B + beta C from operands packed by `BF16PackedA` / `BF16PackedB`.
    public static func sbgemm(m: Int, n: Int, k: Int, alpha: Float, a: BF16PackedA, b: UnsafePointer<UInt16>,
                              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let phase = PhaseProfiler.shared.enter(.gemm)
        defer { PhaseProfiler.shared.leave(phase) }
        if m == 0 || n == 0 { return }
        PhaseProfiler.shared.addGemm(m: m, n: n, k: k, caller: phase)
        let status = ck_sbgemm_packed(m, n, k, alpha, a.raw, b, beta, c, ldc)
        precondition(status == 0, "sbgemm: A was packed as \(a.m)x\(a.k) for another kernel, used as \(m)x\(k)")
    }

    /// op(B) (k, n) -> packed (k, n) bf16 panels in `into` (BF16PackedB.count(k:n:) UInt16, 64-byte aligned).
    public static func packBF16(transB: Bool, k: Int, n: Int, b: UnsafePointer<Float>, ldb: Int,
                                into packed: UnsafeMutablePointer<UInt16>) {
        ck_sbgemm_pack_b(transB ? 1 : 0, k, n, b, ldb, packed)
    }

    /// The reference: operands rounded by `bf16Rounded`, each C element one Double dot product.
    public static func sbgemmNaive(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                                   c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let aip = transA ? a[p * lda + i] : a[i * lda + p]
                    let bpj = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(bf16Rounded(aip)) * Double(bf16Rounded(bpj))
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * sum + old)
            }
        }
    }

    /// x rounded to the nearest bf16 (ties to even), written from the definition: keep the top 16 bits, add one
    /// unit in the last kept place when the dropped 16 bits exceed half of it or equal half with an odd last bit.
    /// Subnormals become signed zero and NaNs stay (quiet) NaNs, as VCVTNE2PS2BF16 does.
    public static func bf16Rounded(_ x: Float) -> Float {
        let bits = x.bitPattern
        if bits & 0x7f80_0000 == 0 { return Float(bitPattern: bits & 0x8000_0000) }
        if x.isNaN { return Float(bitPattern: (bits | 0x0040_0000) & 0xffff_0000) }
        let kept = bits & 0xffff_0000, dropped = bits & 0xffff
        let up = dropped > 0x8000 || (dropped == 0x8000 && kept & 0x1_0000 != 0)
        return Float(bitPattern: up ? kept &+ 0x1_0000 : kept)
    }
}

/// A (m, k) rounded to bf16 and packed for the kernel variant running when it was packed (weights: once per
/// step). Using it after switching variants is refused by the kernel.
public final class BF16PackedA {
    public let m, k: Int
    let raw: UnsafeMutableRawPointer

    public init(transA: Bool, m: Int, k: Int, a: UnsafePointer<Float>, lda: Int) {
        self.m = m; self.k = k
        raw = .allocate(byteCount: ck_sbgemm_packed_a_bytes(m, k), alignment: 64)
        ck_sbgemm_pack_a(transA ? 1 : 0, m, k, a, lda, raw)
    }

    /// Repacks new values of the same shape (the next step's weights) without reallocating.
    public func repack(transA: Bool, a: UnsafePointer<Float>, lda: Int) {
        ck_sbgemm_pack_a(transA ? 1 : 0, m, k, a, lda, raw)
    }

    /// The packed bytes (header, then panels), for tests that call the C entry points directly.
    public var rawForTesting: UnsafeMutableRawPointer { raw }

    deinit { raw.deallocate() }
}

public enum BF16PackedB {
    /// UInt16 elements of a packed B (k, n): 16-column panels of k rounded up to even.
    public static func count(k: Int, n: Int) -> Int { ck_sbgemm_packed_b_bytes(k, n) / 2 }
}
