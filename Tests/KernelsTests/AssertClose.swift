// Float-typed entry points for the kernel tests over the project's one tolerance rule (TestSupport.compareClose:
// |actual - expected| <= atol + rtol * |expected|, reporting the worst element).
import XCTest
import TestSupport

/// The report of the worst element when some element is out of tolerance (or the lengths differ), else nil.
func worstMismatch(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float) -> CloseReport? {
    guard actual.count == expected.count else {
        return CloseReport(label: "length", count: max(actual.count, expected.count), failures: 1, worstIndex: -1,
                           worstActual: Float(actual.count), worstExpected: Float(expected.count),
                           worstRatio: .infinity, maxAbsError: .infinity, maxRelError: .infinity)
    }
    let report = actual.withUnsafeBufferPointer { a in
        expected.withUnsafeBufferPointer { e in compareClose(a, e, rtol: Double(rtol), atol: Double(atol), label: "") }
    }
    return report.passed ? nil : report
}

/// Asserts every element is within tolerance; on failure the message names `label` and the worst element.
func assertClose(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    TestSupport.assertClose(actual, expected, rtol: Double(rtol), atol: Double(atol), label, file: file, line: line)
}
