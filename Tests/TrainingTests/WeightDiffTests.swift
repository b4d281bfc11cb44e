// diff-weights' report stays JSON whatever the files hold: tensor names with quotes, backslashes and control
// characters are escaped, non-finite differences are strings, and the figures are the comparison's.
import XCTest
import Foundation
import SafeTensors
import Training

final class WeightDiffTests: XCTestCase {
    func file(_ tensors: [(String, [Float])], shape: [Int]? = nil) throws -> SafeTensorsFile {
        var w = SafeTensorsWriter()
        for (name, values) in tensors { try w.add(name, shape: shape ?? [values.count], floats: values) }
        return try SafeTensorsFile(data: Data(w.serialized(metadata: [:])), url: URL(fileURLWithPath: "/mem.safetensors"))
    }

    func testTensorNamesAreEscapedSoTheReportStaysJSON() throws {
        let hostile = "a\"b\\c\n\t\u{1}\"}, \"x\": 1, \"d"
        let a = try file([(hostile, [1, 2, 3]), ("plain", [0])])
        let b = try file([(hostile, [1, 2.5, 3]), ("plain", [0])])
        let report = try WeightDiff.compare(a, b, nameA: "a", nameB: "b")
        XCTAssertEqual(report.worstTensor, hostile)
        XCTAssertFalse(report.json.contains("\n"), "one line: \(report.json)")
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        XCTAssertEqual(parsed["worst_tensor"] as? String, hostile)
        XCTAssertEqual(parsed["max_abs_diff"] as? Double, 0.5)
        XCTAssertEqual(parsed["tensors"] as? Int, 2)
        XCTAssertEqual(parsed["values"] as? Int, 4)
        XCTAssertEqual(parsed["bit_identical"] as? Bool, false)
        XCTAssertNil(parsed["x"], "a name must not inject keys")
    }

    func testNonFiniteDifferencesAreStringsAndNamesMustMatch() throws {
        let a = try file([("w", [1, .nan])]), b = try file([("w", [1, .nan])])
        let report = try WeightDiff.compare(a, b, nameA: "a", nameB: "b")
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        XCTAssertEqual(parsed["max_abs_diff"] as? String, "inf")
        XCTAssertEqual(parsed["non_finite_values"] as? Int, 2, "counted in both files")
        XCTAssertEqual(parsed["bit_identical"] as? Bool, true)
        assertRefused(try WeightDiff.compare(a, try file([("v", [1, 2])]), nameA: "a.st", nameB: "b.st"),
                      ["tensor names differ", "a.st", "b.st"])
        assertRefused(try WeightDiff.compare(a, try file([("w", [1])]), nameA: "a.st", nameB: "b.st"),
                      ["tensor w", "shape [2] in a.st", "[1] in b.st"])
    }

    func testTensorsOfTheSameValuesInAnotherShapeDiffer() throws {
        let values = (0..<64).map { Float($0) }
        let a = try file([("hints", values)], shape: [1, 1, 8, 8]), b = try file([("hints", values)], shape: [8, 8, 1, 1])
        assertRefused(try WeightDiff.compare(a, b, nameA: "a.st", nameB: "b.st"),
                      ["tensor hints", "shape [1, 1, 8, 8] in a.st", "[8, 8, 1, 1] in b.st"])
        let infinities = try file([("w", [1, .infinity])])
        let report = try WeightDiff.compare(infinities, infinities, nameA: "a", nameB: "b")
        XCTAssertEqual(report.maxAbsDiff, 0, "equal infinities agree")
        XCTAssertEqual(report.nonFiniteValues, 2)
        XCTAssertTrue(report.bitIdentical)
    }
}
