// Measures sgemm throughput at the GEMM shapes the UNet's convolutions issue (the `bench-sgemm` command and any
// other command that wants to know how fast this machine's BLAS is), plus OpenBLAS's runtime controls.
import CBLAS

/// OpenBLAS's process-wide runtime state: the kernel set it picked for this CPU and its thread count.
public enum BLASRuntime {
    /// The kernel set OpenBLAS loaded, e.g. "SkylakeX" or "Haswell" (set by OPENBLAS_CORETYPE or detected).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) {
        precondition(n >= 1, "OpenBLAS thread count must be >= 1")
        openblas_set_num_threads(Int32(n))
    }
}

/// One GEMM shape: C (m, n) = op(A) (m, k) x op(B) (k, n).
public struct SgemmCase: Sendable, Codable, Hashable {
    public var name: String
    public var transA, transB: Bool
    public var m, n, k: Int

    public init(name: String, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int) {
        self.name = name; self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k
    }

    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

public struct SgemmMeasurement: Sendable, Codable {
    public var shape: SgemmCase
    public var implementation: String  // "openblas" or "naive"
    public var repeats: Int
    /// GFLOP/s of the fastest repeat and of the mean repeat.
    public var bestGflops, meanGflops: Double
    public var bestSeconds: Double
}

public enum SgemmBenchmark {
    /// A 3x3 conv layer of the mnist UNet: `inChannels` -> `outChannels` at `size`x`size` output pixels.
    public struct ConvLayer: Sendable {
        public var label: String
        public var inChannels, outChannels, size: Int
        public init(_ label: String, _ inChannels: Int, _ outChannels: Int, _ size: Int) {
            self.label = label; self.inChannels = inChannels; self.outChannels = outChannels; self.size = size
        }
    }

    /// The distinct 3x3 conv shapes of the mnist config (C = 32, mult [1, 2, 2]); decoder convs see the skip
    /// concatenations (96 and 128 input channels), downsamples are listed by their output size.
    public static let mnistConvLayers: [ConvLayer] = [
        ConvLayer("res 32->32 @28", 32, 32, 28),
        ConvLayer("dec cat 96->32 @28", 96, 32, 28),
        ConvLayer("up 64->64 @28", 64, 64, 28),
        ConvLayer("down 32->32 28->14", 32, 32, 14),
        ConvLayer("res 64->64 @14", 64, 64, 14),
        ConvLayer("dec cat 128->64 @14", 128, 64, 14),
        ConvLayer("res 64->64 @7", 64, 64, 7),
        ConvLayer("dec cat 128->64 @7", 128, 64, 7),
    ]

    /// For each layer with batch N and P = N*Ho*Wo output pixels, the three GEMMs of a conv step:
    /// forward W (Cout, Cin*9) x cols (Cin*9, P); backward dW += dY (Cout, P) x cols^T (P, Cin*9);
    /// backward dCols = W^T (Cin*9, Cout) x dY (Cout, P).
    public static func convCases(batch: Int, layers: [ConvLayer] = mnistConvLayers) -> [SgemmCase] {
        layers.flatMap { l -> [SgemmCase] in
            let kk = l.inChannels * 9, p = batch * l.size * l.size
            return [
                SgemmCase(name: "\(l.label) forward", m: l.outChannels, n: p, k: kk),
                SgemmCase(name: "\(l.label) dWeight", transB: true, m: l.outChannels, n: kk, k: p),
                SgemmCase(name: "\(l.label) dInput", transA: true, m: kk, n: p, k: l.outChannels),
            ]
        }
    }

    /// Times `repeats` calls (after one untimed warm-up) of C = op(A) op(B) on random data.
    public static func measure(_ c: SgemmCase, repeats: Int, naive: Bool = false) -> SgemmMeasurement {
        precondition(repeats >= 1, "repeats must be >= 1")
        let aCount = c.m * c.k, bCount = c.k * c.n, cCount = c.m * c.n
        let a = UnsafeMutablePointer<Float>.allocate(capacity: aCount)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: bCount)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: cCount)
        defer { a.deallocate(); b.deallocate(); out.deallocate() }
        var rng = UInt32(12345)
        func next() -> Float {  // xorshift: any values will do, but not denormals or zeros
            rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5
            return Float(rng % 2000) / 1000 - 1
        }
        for i in 0..<aCount { a[i] = next() }
        for i in 0..<bCount { b[i] = next() }
        out.initialize(repeating: 0, count: cCount)
        let lda = c.transA ? c.m : c.k, ldb = c.transB ? c.k : c.n
        func run() {
            if naive {
                Gemm.sgemmNaive(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 1, a: a,
                                lda: lda, b: b, ldb: ldb, beta: 0, c: out, ldc: c.n)
            } else {
                Gemm.sgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 1, a: a, lda: lda,
                           b: b, ldb: ldb, beta: 0, c: out, ldc: c.n)
            }
        }
        run()
        let clock = ContinuousClock()
        var best = Double.infinity, total = 0.0
        for _ in 0..<repeats {
            let elapsed = clock.measure { run() }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            best = min(best, seconds)
            total += seconds
        }
        return SgemmMeasurement(shape: c, implementation: naive ? "naive" : "openblas", repeats: repeats,
                                bestGflops: c.flops / best / 1e9, meanGflops: c.flops * Double(repeats) / total / 1e9,
                                bestSeconds: best)
    }
}
