// The tolerance rule for bf16 results against PyTorch's float32 fixtures: a whole tensor's relative L2 error.
//
// Why not the element-wise rtol/atol rule: bf16 keeps 8 significant bits (unit roundoff u = 2^-9 ~ 0.002), so each
// rounded operand is off by up to u relative and each product of two by up to 2u; a value that is a sum of many
// such products has an error that is small relative to the vector of values but not to each single value (a sum
// that cancels to near zero keeps the error of its terms). So a tensor passes when
// ||got - want||_2 <= rel ||want||_2 + atol sqrt(n), atol = 1e-5 (the fp32 contract's, for tensors PyTorch leaves at
// exactly zero, e.g. the key biases' gradients, which softmax ignores), with `rel` from BF16Tolerance.
import XCTest

/// The relative L2 bounds of bf16 results, in units of u = 2^-9. Independent roundings of ~1.4u (two operands)
/// per product add in quadrature along the path: ~30 rounded products deep for the tiny configs' outputs
/// (sqrt(30) 1.4u ~ 8u), about twice that for gradients, which also cancel in their reductions (a GroupNorm
/// weight's gradient is a sum over every pixel of terms of both signs, 16 values ~1e-2 in size here).
/// PyTorch's own bf16 autocast on the same fixtures, against its fp32 (scripts/bf16/torch_bf16_error.py): outputs
/// 0.009-0.016; gradients median 0.012-0.024, worst 0.031-0.071; AdamW update 0.176. Ours: see the test output
/// (docs/bf16-kernels.md has the figures); the bounds leave ~2x over both.
public enum BF16Tolerance {
    /// Forward values (outputs, residuals) and the loss: 16u.
    public static let forward = 0x1p-5
    /// Each gradient tensor: 64u (the smallest tensors, whose gradients cancel most).
    public static let gradientTensor = 0x1p-3
    /// All of a model's gradients as one vector: 16u.
    public static let gradientWhole = 0x1p-5
    /// AdamW's first update (lr g / (|g| + eps) ~ lr sign(g)) of all weights as one vector: a bf16 gradient flips
    /// the sign of the ~1% of elements whose |g| is within its error of zero, each flip costing 2 lr, so the
    /// relative L2 error is ~2 sqrt(flipped fraction); 0.3 allows 2.2%.
    public static let update = 0.3
}
public struct L2Report: CustomStringConvertible, Sendable {
    public let label: String
    public let count: Int
    /// ||got - want|| / ||want|| (infinity when want is zero and got is not).
    public let relative: Double
    public let errorNorm: Double, referenceNorm: Double
    public let passed: Bool
    public var description: String {
        String(format: "%@: %d values, relative L2 error %.3g (|err| %.3g, |ref| %.3g)%@", label, count, relative,
               errorNorm, referenceNorm, passed ? "" : " FAILS")
    }
}

/// Checks ||got - want||_2 <= rel ||want||_2 + atol sqrt(n) and returns the report (asserting it).
@discardableResult
public func assertRelativeL2(_ got: [Float], _ want: [Float], rel: Double, atol: Double = 1e-5, _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) -> L2Report {
    XCTAssertEqual(got.count, want.count, "\(label): sizes differ", file: file, line: line)
    var err = 0.0, ref = 0.0
    for i in 0..<min(got.count, want.count) {
        let d = Double(got[i]) - Double(want[i])
        err += d * d
        ref += Double(want[i]) * Double(want[i])
    }
    err = err.squareRoot(); ref = ref.squareRoot()
    let passed = err <= rel * ref + atol * Double(want.count).squareRoot() && err.isFinite
    let report = L2Report(label: label, count: want.count, relative: ref > 0 ? err / ref : (err == 0 ? 0 : .infinity),
                          errorNorm: err, referenceNorm: ref, passed: passed)
    XCTAssertTrue(passed, report.description, file: file, line: line)
    return report
}
