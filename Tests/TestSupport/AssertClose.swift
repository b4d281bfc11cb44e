// The one tolerance rule every numeric test uses, and a report of the worst mismatch it saw.
//
// An element passes when |actual - expected| <= atol + rtol * |expected| (numpy.allclose's rule). The default
// tolerances are the project's contract with PyTorch: rtol 1e-4, atol 1e-5 on float32 values.
import XCTest

public struct CloseReport: CustomStringConvertible, Sendable {
    public let label: String
    public let count: Int
    public let failures: Int
    public let worstIndex: Int
    public let worstActual: Float
    public let worstExpected: Float
    /// |a - e| / (atol + rtol |e|) at the worst element: <= 1 passes.
    public let worstRatio: Double
    public let maxAbsError: Double
    public let maxRelError: Double     // |a - e| / max(|e|, 1e-12) over elements with |e| > atol
    public var passed: Bool { failures == 0 }
    public init(label: String, count: Int, failures: Int, worstIndex: Int, worstActual: Float, worstExpected: Float,
                worstRatio: Double, maxAbsError: Double, maxRelError: Double) {
        self.label = label; self.count = count; self.failures = failures; self.worstIndex = worstIndex
        self.worstActual = worstActual; self.worstExpected = worstExpected; self.worstRatio = worstRatio
        self.maxAbsError = maxAbsError; self.maxRelError = maxRelError
    }
    public var description: String {
        String(format: "%@: %d values, %d outside tolerance; worst at [%d] actual %.9g expected %.9g (%.3f of the allowance); max abs err %.3g, max rel err %.3g",
               label, count, failures, worstIndex, worstActual, worstExpected, worstRatio, maxAbsError, maxRelError)
    }
}

/// Compares element-wise and returns the report (without asserting).
public func compareClose(_ actual: UnsafeBufferPointer<Float>, _ expected: UnsafeBufferPointer<Float>,
                         rtol: Double = 1e-4, atol: Double = 1e-5, label: String) -> CloseReport {
    precondition(actual.count == expected.count, "\(label): \(actual.count) values vs \(expected.count) expected")
    var failures = 0, worst = -1.0, worstIndex = 0, maxAbs = 0.0, maxRel = 0.0
    for i in 0..<actual.count {
        let a = Double(actual[i]), e = Double(expected[i])
        let err = abs(a - e)
        let allowance = atol + rtol * abs(e)
        // An exact comparison (zero allowance) passes only on equality.
        let ratio = !a.isFinite || !e.isFinite ? (a == e ? 0 : .infinity)
            : allowance > 0 ? err / allowance : (err == 0 ? 0 : .infinity)
        if !(ratio <= 1) { failures += 1 }
        if !(ratio <= worst) { worst = ratio; worstIndex = i }
        maxAbs = max(maxAbs, err)
        if abs(e) > atol { maxRel = max(maxRel, err / abs(e)) }
    }
    return CloseReport(label: label, count: actual.count, failures: failures, worstIndex: worstIndex,
                       worstActual: actual.isEmpty ? 0 : actual[worstIndex],
                       worstExpected: expected.isEmpty ? 0 : expected[worstIndex],
                       worstRatio: max(worst, 0), maxAbsError: maxAbs, maxRelError: maxRel)
}

/// Asserts every element is within tolerance; on failure the message names the worst element.
@discardableResult
public func assertClose(_ actual: [Float], _ expected: [Float], rtol: Double = 1e-4, atol: Double = 1e-5,
                        _ label: String, file: StaticString = #filePath, line: UInt = #line) -> CloseReport {
    XCTAssertEqual(actual.count, expected.count, "\(label): sizes differ", file: file, line: line)
    guard actual.count == expected.count else {
        return CloseReport(label: label, count: 0, failures: 1, worstIndex: 0, worstActual: 0, worstExpected: 0,
                           worstRatio: .infinity, maxAbsError: .infinity, maxRelError: .infinity)
    }
    let report = actual.withUnsafeBufferPointer { a in
        expected.withUnsafeBufferPointer { e in compareClose(a, e, rtol: rtol, atol: atol, label: label) }
    }
    XCTAssertTrue(report.passed, report.description, file: file, line: line)
    return report
}
