// The arithmetic of the convolutions' and attention's matrix products (`--precision`). fp32, the default, is the
// exact path that matches PyTorch's float32 fixtures. bf16 rounds both operands of each such product to bf16 (8
// significant bits, nearest even) and accumulates in fp32, as PyTorch's bf16 autocast does on a CPU. Everything
// else stays fp32 in both: master weights, AdamW moments, the gradient all-reduce, the loss, GroupNorm statistics,
// softmax, the time embedding's linears. The precision travels with each call (ConvShape, AttentionShape), so one
// process can run both (a test, or fp32 sampling beside bf16 training).
//
// Which kernel multiplies bf16 operands is a speed choice made once per process (BF16Kernel): where the CPU's
// bf16 instruction beats its fp32 FMA (VDPBF16PS on Zen 4), our bf16 GEMM (Gemm.sbgemm) runs every product;
// elsewhere (no bf16 instructions, or VDPBF16PS at half the FMA rate as on Sapphire/Emerald Rapids without AMX)
// the same rounding runs through fp32 kernels - the bf16 GEMM's FMA emulation for im2col and attention, OpenBLAS
// sgemm on operands rounded in place for the Winograd products - and bf16 is then no faster than fp32.
import CKernels

public enum Precision: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case fp32, bf16
    public var description: String { rawValue }
}

extension BF16Kernel {
    /// True when the variant in use runs the CPU's own bf16 dot-product instruction (so bf16 can be faster than
    /// fp32); false for the FMA emulations, which give the same bits at fp32 speed at best.
    public static var isNative: Bool { current == "avx512bf16" }

    /// VDPBF16PS's and the fp32 FMA's peak rates here (a few ms to measure), as "x.xx" of the FMA's, or nil
    /// without bf16 instructions.
    public static func nativeSpeedRatio() -> Double? {
        guard cpuHasBF16Instructions else { return nil }
        let p = peakGflops(iterations: 200_000)
        return p.fmaGflops > 0 ? p.dpbf16Gflops / p.fmaGflops : nil
    }

    /// What `info` prints and bf16 runs log: which kernels multiply bf16 operands and whether that is faster.
    public static var pathDescription: String {
        if isNative {
            return "bf16 products: VDPBF16PS (\(current)), fp32 accumulation"
        }
        let why: String
        if let r = nativeSpeedRatio() {
            why = "this CPU's VDPBF16PS runs at \(String(format: "%.2f", r))x its fp32 FMA rate"
        } else {
            why = "this CPU has no bf16 instructions"
        }
        return "bf16 products: the same rounding through fp32 kernels (\(current) FMA emulation for im2col and "
            + "attention, OpenBLAS sgemm on rounded operands for Winograd), because \(why)"
    }

    /// The warning a `--precision bf16` run prints when bf16 cannot be faster than fp32 here; nil when it can.
    public static var slowPathWarning: String? {
        isNative ? nil : "warning: --precision bf16 will not be faster than fp32 on this CPU; " + pathDescription
    }
}

extension Gemm {
    /// A conv's or attention's matrix product in `precision`: `sgemm` (fp32) or `sbgemm` (bf16 operands, fp32
    /// accumulation; every bf16 kernel variant gives the same bits).
    @inline(__always)
    public static func product(_ precision: Precision, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                               alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if precision == .fp32 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
        } else {
            sbgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: beta, c: c, ldc: ldc)
        }
    }
}

/// With native bf16 kernels, a conv's transformed weight matrices rounded and packed once per call and reused by
/// every chunk's product (the Winograd convs multiply each of their E weight matrices by 10-60 chunks of tiles;
/// repacking them each time would cost ~40% of those small products).
final class MixedWeights {
    let packs: [BF16PackedA]
    let k: Int
    /// One packed B (k, maxN), filled and consumed right away by `multiply`.
    let scratch: UnsafeMutablePointer<UInt16>

    /// `count` matrices op(A_e) (m, k), A_e at a + e * stride.
    init(count: Int, transA: Bool, m: Int, k: Int, a: UnsafePointer<Float>, stride: Int, maxN: Int) {
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

/// bf16 storage and rounding of whole buffers (vectorised, the widest the CPU runs).
public enum BF16Buffer {
    /// y (count) = x rounded to bf16, as floats; y may alias x.
    @inline(__always)
    public static func round(count: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        ck_bf16_round(count, x, y)
    }

    /// x (count) floats -> out (count) bf16 (rounded); out may alias x.
    public static func store(count: Int, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<UInt16>) {
        ck_bf16_store(count, x, out)
    }

    /// in (count) bf16 -> y (count) floats; y may alias in.
    public static func load(count: Int, _ x: UnsafePointer<UInt16>, into y: UnsafeMutablePointer<Float>) {
        ck_bf16_load(count, x, y)
    }

    /// The references the kernels are tested against: Gemm.bf16Rounded element by element.
    public static func roundNaive(_ x: [Float]) -> [Float] { x.map(Gemm.bf16Rounded) }
    public static func storeNaive(_ x: [Float]) -> [UInt16] { x.map { UInt16(Gemm.bf16Rounded($0).bitPattern >> 16) } }
}
