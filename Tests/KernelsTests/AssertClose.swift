// The one closeness rule every kernel test uses, and the assertion that reports the worst offender.
import XCTest

/// The element that violates |actual - expected| <= atol + rtol * |expected| the most (by the ratio of its error
/// to its allowance), or nil when every element passes. NaN anywhere counts as a violation; so does a length
/// mismatch (reported at index -1).
struct Mismatch: CustomStringConvertible {
    var index: Int, actual: Float, expected: Float, ratio: Float, failures: Int, count: Int
    var description: String {
        "\(failures)/\(count) elements out of tolerance; worst at [\(index)]: actual \(actual), expected \(expected), "
            + "error/allowance \(ratio)"
    }
}

func worstMismatch(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float) -> Mismatch? {
    guard actual.count == expected.count else {
        return Mismatch(index: -1, actual: Float(actual.count), expected: Float(expected.count), ratio: .infinity,
                        failures: 1, count: max(actual.count, expected.count))
    }
    var worst: Mismatch?
    var failures = 0
    for i in actual.indices {
        let a = actual[i], e = expected[i]
        let allowance = atol + rtol * abs(e)
        let err = abs(a - e)
        let ratio: Float = (a.isNaN || e.isNaN) ? .infinity : (allowance > 0 ? err / allowance : (err > 0 ? .infinity : 0))
        guard ratio > 1 else { continue }
        failures += 1
        if worst == nil || ratio > worst!.ratio {
            worst = Mismatch(index: i, actual: a, expected: e, ratio: ratio, failures: 0, count: actual.count)
        }
    }
    worst?.failures = failures
    return worst
}

/// Asserts |actual[i] - expected[i]| <= atol + rtol * |expected[i]| for every i (and equal lengths). On failure
/// the message names `label` and the worst element: its index, both values and its error / allowance ratio.
func assertClose(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    if let m = worstMismatch(actual, expected, rtol: rtol, atol: atol) {
        XCTFail("\(label): \(m)", file: file, line: line)
    }
}
