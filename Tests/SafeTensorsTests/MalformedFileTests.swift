// Hand-made broken files: each kind of damage gives its own typed error naming the file and the tensor.
import Foundation
import XCTest
@testable import SafeTensors

final class MalformedFileTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
    }

    /// Opens `bytes` saved as `name` and returns the error, checking its message names the file.
    private func openError(_ bytes: [UInt8], _ name: String = "bad.safetensors",
                           file: StaticString = #filePath, line: UInt = #line) throws -> SafeTensorsError? {
        let url = try save(bytes, as: name, in: dir)
        let error = safeTensorsError({ _ = try SafeTensorsFile(contentsOf: url) }, file: file, line: line)
        if let error { XCTAssertTrue(error.description.contains(url.path), "\(error)", file: file, line: line) }
        return error
    }

    private func path(_ name: String = "bad.safetensors") -> String { dir.appendingPathComponent(name).path }

    private let twoTensors = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}}"#

    func testMissingFileIsUnreadable() throws {
        let url = dir.appendingPathComponent("absent.safetensors")
        let error = safeTensorsError { _ = try SafeTensorsFile(contentsOf: url) }
        guard case .unreadable(let file, _)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(file, url.path)
    }

    func testTruncatedFiles() throws {
        XCTAssertEqual(try openError([]), .truncated(file: path(), tensor: nil, size: 0, needed: 8))
        XCTAssertEqual(try openError([1, 0, 0]), .truncated(file: path(), tensor: nil, size: 3, needed: 8))
        // The length prefix promises more header than there is.
        let shortHeader = craftedFile(header: "{}", data: [], lengthPrefix: 100)
        XCTAssertEqual(try openError(shortHeader), .truncated(file: path(), tensor: nil, size: 10, needed: 108))
        let absurd = craftedFile(header: "{}", data: [], lengthPrefix: UInt64.max)
        guard case .truncated(_, nil, 10, _)? = try openError(absurd) else { return XCTFail() }
        // A valid file with its last 5 data bytes cut off: 'b' is the tensor that no longer fits.
        let whole = craftedFile(header: twoTensors, data: [UInt8](repeating: 0, count: 20))
        let cut = Array(whole.dropLast(5))
        let error = try openError(cut)
        XCTAssertEqual(error, .truncated(file: path(), tensor: "b", size: cut.count, needed: whole.count))
        XCTAssertTrue(String(describing: error).contains("'b'"))
    }

    func testHeaderThatIsNotAJSONObject() throws {
        for header in ["{not json}", "[1, 2]", "{\"a\": ", "\"text\"", "   {}"] {
            let error = try openError(craftedFile(header: header, data: []))
            guard case .badHeader(_, nil, _)? = error else { return XCTFail("\(header): got \(String(describing: error))") }
        }
    }

    func testEntriesWithBadFields() throws {
        let cases: [(String, String)] = [
            (#"{"w":[1]}"#, "not a JSON object"),
            (#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, "'dtype'"),
            (#"{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}"#, "'dtype'"),
            (#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, "'shape'"),
            (#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, "'shape'"),
            (#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, "'shape'"),
            (#"{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}"#, "'shape'"),
            (#"{"w":{"dtype":"F32","shape":[1]}}"#, "'data_offsets'"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, "'data_offsets'"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, "end before they begin"),
            (#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#, "'extra'"),
        ]
        for (header, phrase) in cases {
            let error = try openError(craftedFile(header: header, data: [0, 0, 0, 0]))
            guard case .badHeader(_, "w", let reason)? = error else { XCTFail("\(header): got \(String(describing: error))"); continue }
            XCTAssertTrue(reason.contains(phrase), "\(header): \(reason)")
            XCTAssertTrue(String(describing: error).contains("'w'"))
        }
    }

    func testMetadataMustMapStringsToStrings() throws {
        for header in [#"{"__metadata__":{"step":3}}"#, #"{"__metadata__":"x"}"#] {
            let error = try openError(craftedFile(header: header, data: []))
            guard case .badHeader(_, "__metadata__", _)? = error else { return XCTFail("\(header): got \(String(describing: error))") }
        }
    }

    func testOffsetOutOfRange() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[100,104]}}"#
        let error = try openError(craftedFile(header: header, data: [UInt8](repeating: 0, count: 8)))
        XCTAssertEqual(error, .offsetOutOfRange(file: path(), tensor: "b", begin: 100, end: 104, dataSize: 8))
        XCTAssertTrue(String(describing: error).contains("'b'"))
    }

    func testOverlappingTensors() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let error = try openError(craftedFile(header: header, data: [UInt8](repeating: 0, count: 12)))
        XCTAssertEqual(error, .overlap(file: path(), tensor: "b", other: "a"))
        XCTAssertTrue(String(describing: error).contains("'a'") && String(describing: error).contains("'b'"))
    }

    func testUnsupportedDType() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"h":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#
        let error = try openError(craftedFile(header: header, data: [UInt8](repeating: 0, count: 8)))
        XCTAssertEqual(error, .unsupportedDType(file: path(), tensor: "h", dtype: "BF16",
                                                supported: ["F32", "F64", "I64", "I32", "U8"]))
        XCTAssertTrue(String(describing: error).contains("BF16") && String(describing: error).contains("'h'"))
    }

    func testShapeAndByteSizeMismatch() throws {
        let header = #"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#
        let error = try openError(craftedFile(header: header, data: [UInt8](repeating: 0, count: 20)))
        XCTAssertEqual(error, .sizeMismatch(file: path(), tensor: "w", shape: [2, 3], dtype: "F32", byteCount: 20))
        XCTAssertTrue(String(describing: error).contains("'w'"))
    }

    func testGapsAndTrailingBytesAreRejected() throws {
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        guard case .badHeader(_, "b", _)? = try openError(craftedFile(header: gap, data: [UInt8](repeating: 0, count: 12)))
        else { return XCTFail() }
        let trailing = craftedFile(header: twoTensors, data: [UInt8](repeating: 0, count: 24))
        guard case .badHeader(_, "b", let reason)? = try openError(trailing) else { return XCTFail() }
        XCTAssertTrue(reason.contains("4 bytes"), reason)
    }

    func testUnpaddedHeaderFromAnotherWriterIsAccepted() throws {
        // 8 + header length is not a multiple of 8 here, so the data is unaligned in the mapping.
        let values: [Float] = [1.5, -2, 3, 4, 5]
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F64","shape":[3],"data_offsets":[8,32]}}"#
        XCTAssertNotEqual(header.utf8.count % 8, 0)
        let data = values[0..<2].withUnsafeBytes { [UInt8]($0) } + values[2...].map(Double.init).withUnsafeBytes { [UInt8]($0) }
        let url = try save(craftedFile(header: header, data: data), as: "ok.safetensors", in: dir)
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(try file.floats("a"), [1.5, -2])
        XCTAssertEqual(try file.floats("b"), [3, 4, 5])
    }
}
