// The benchmarks time the shapes a config really has: the conv geometries come from the model's layout (ModelCost),
// so the mnist list holds the mnist UNet's convs and another config gets its own; the GEMM cases follow im2col's
// three products per conv; the measurement reports a throughput.
import XCTest
import Benchmarks
import Kernels
import Model

final class BenchmarkShapesTests: XCTestCase {
    func testMnistConvGeometriesAreTheUNetsAndControlNets() {
        let shapes = ConvBenchmark.shapes(config: .mnist, batch: 64)
        let labels = Set(shapes.map(\.0))
        // Encoder/decoder 3x3 convs at each level, a decoder concat input, the stride-2 downsamples, a 1x1 skip,
        // the image and hint inputs, and the zero convs (1x1) at 7x7.
        for expected in ["32->32 @28", "96->32 @28", "64->64 @14", "128->64 @14", "64->64 @7", "128->64 @7",
                         "32->32 s2 28->14", "64->64 s2 14->7", "96->32 1x1 @28", "1->32 @28", "1->16 @28",
                         "64->64 1x1 @7"] {
            XCTAssertTrue(labels.contains(expected), "missing \(expected) in \(labels.sorted())")
        }
        XCTAssertFalse(labels.contains { $0.contains("@56") || $0.contains("@3") }, "\(labels.sorted())")
        for (_, s) in shapes { XCTAssertEqual(s.batch, 64) }
        let tiny = Set(ConvBenchmark.shapes(config: .tiny, batch: 2).map(\.0))
        XCTAssertTrue(tiny.contains("8->8 @8") && tiny.contains("16->16 @4"), "\(tiny.sorted())")
        XCTAssertTrue(tiny.isDisjoint(with: ["32->32 @28", "64->64 @14"]))
    }

    func testGemmOperandBytesAreTheLargestCasesWithoutOverflow() {
        // bench-sgemm refuses a --batch whose operands cannot fit: the bytes grow with the batch and never wrap.
        let small = SgemmBenchmark.bytesNeeded(SgemmBenchmark.convCases(config: .mnist, batch: 1))
        let big = SgemmBenchmark.bytesNeeded(SgemmBenchmark.convCases(config: .mnist, batch: 4096))
        XCTAssertGreaterThan(small, 0)
        XCTAssertGreaterThan(big, 1000 * small)
        XCTAssertEqual(SgemmBenchmark.bytesNeeded([SgemmCase(name: "x", m: 2, n: 3, k: 4)]), 4 * (8 + 12 + 6))
        XCTAssertTrue(SgemmBenchmark.bytesNeeded([SgemmCase(name: "x", m: Int.max, n: Int.max, k: 2)]).isFinite)
    }

    func testGemmCasesAreImToColsThreeProductsPerConv() {
        let cases = SgemmBenchmark.convCases(config: .mnist, batch: 64)
        let threeByThree = ModelCost(config: .mnist).convolutions.keys.filter { $0.kernel == 3 }
        XCTAssertEqual(cases.count, 3 * threeByThree.count)
        // 32->32 at 28x28: W (32, 288) x cols (288, 64*784), then dW (32, 288) and dCols (288, 64*784).
        let i = try? XCTUnwrap(cases.firstIndex { $0.name == "32->32 @28 forward" })
        guard let i else { return XCTFail("no 32->32 @28 case") }
        XCTAssertEqual(cases[i], SgemmCase(name: "32->32 @28 forward", m: 32, n: 50_176, k: 288))
        XCTAssertEqual(cases[i + 1], SgemmCase(name: "32->32 @28 dWeight", transB: true, m: 32, n: 288, k: 50_176))
        XCTAssertEqual(cases[i + 2], SgemmCase(name: "32->32 @28 dInput", transA: true, m: 288, n: 50_176, k: 32))
        // A stride-2 conv's GEMMs run over its output pixels.
        let down = try? XCTUnwrap(cases.first { $0.name == "32->32 s2 28->14 forward" })
        XCTAssertEqual(down?.n, 64 * 14 * 14)
    }

    func testMeasureReportsAThroughput() {
        let small = SgemmCase(name: "small", transB: true, m: 8, n: 12, k: 16)
        for naive in [false, true] {
            let m = SgemmBenchmark.measure(small, repeats: 2, naive: naive)
            XCTAssertEqual(m.implementation, naive ? "naive" : "openblas")
            XCTAssertTrue(m.bestGflops.isFinite && m.bestGflops > 0)
            XCTAssertGreaterThanOrEqual(m.bestGflops, m.meanGflops * 0.999_999)
        }
        XCTAssertFalse(BLASRuntime.coreName.isEmpty)
        XCTAssertGreaterThanOrEqual(BLASRuntime.threads, 1)
    }
}
