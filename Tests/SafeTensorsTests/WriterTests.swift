// The writer: header layout and padding, every dtype, metadata escaping, atomic replacement, and its own errors.
import Foundation
import XCTest
@testable import SafeTensors

final class WriterTests: XCTestCase {
    func testHeaderIsPaddedWithSpacesToAMultipleOfEight() throws {
        for nameLength in 1...12 {
            var writer = SafeTensorsWriter()
            try writer.add(String(repeating: "w", count: nameLength), shape: [3], floats: [1, 2, 3])
            let bytes = writer.serialized(metadata: [:])
            let n = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            XCTAssertEqual(n % 8, 0)
            XCTAssertEqual(bytes.count, 8 + n + 12)
            let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
            XCTAssertTrue(header.hasPrefix("{"))
            let close = try XCTUnwrap(header.lastIndex(of: "}"))
            XCTAssertTrue(header[header.index(after: close)...].allSatisfy { $0 == " " })
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(header.utf8)) as? [String: Any])
        }
    }

    func testEveryDTypeRoundTrips() throws {
        let doubles: [Double] = [1.5, -2.25, 1e30, 0]
        let int32s: [Int32] = [-7, 0, Int32.max]
        let bytes: [UInt8] = [0, 1, 255, 128, 7]
        var writer = SafeTensorsWriter()
        try writer.add("f32", shape: [2, 2], floats: [1, -2, .infinity, 0.1])
        try doubles.withUnsafeBytes { try writer.add("f64", dtype: .f64, shape: [4], bytes: $0) }
        try writer.add("i64", shape: [3], int64s: [Int64.min, 0, 917])
        try int32s.withUnsafeBytes { try writer.add("i32", dtype: .i32, shape: [3, 1], bytes: $0) }
        try bytes.withUnsafeBytes { try writer.add("u8", dtype: .u8, shape: [5], bytes: $0) }
        try writer.add("scalar", shape: [], floats: [42])
        try writer.add("empty", shape: [0, 3], floats: [])
        let url = try temporaryDirectory(self).appendingPathComponent("all.safetensors")
        try writer.write(to: url, metadata: [:])

        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.names, ["f32", "f64", "i64", "i32", "u8", "scalar", "empty"])
        XCTAssertTrue(file.metadata.isEmpty)
        XCTAssertEqual(try file.floats("f32"), [1, -2, .infinity, 0.1])
        XCTAssertEqual(try file.floats("f64"), doubles.map(Float.init))
        XCTAssertEqual(try file.int64s("i64"), [Int64.min, 0, 917])
        XCTAssertEqual(try file.int64s("i32"), int32s.map(Int64.init))
        XCTAssertEqual(try file.withRawBytes("u8") { [UInt8]($0) }, bytes)
        XCTAssertEqual(file.info("i32")?.shape, [3, 1])
        XCTAssertEqual(file.info("scalar")?.shape, [])
        XCTAssertEqual(try file.floats("scalar"), [42])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(file.info("empty")?.count, 0)
    }

    func testMetadataWithAwkwardCharactersRoundTrips() throws {
        let metadata = ["config": "{\"a\": [1, 2]}", "path\\with": "tab\tnewline\nquote\"", "ctl": "\u{1}\u{1f}",
                        "unicode": "Grüße ✓"]
        var writer = SafeTensorsWriter()
        try writer.add("x \"odd\" name", shape: [1], floats: [3])
        let url = try temporaryDirectory(self).appendingPathComponent("meta.safetensors")
        try writer.write(to: url, metadata: metadata)
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(try file.floats("x \"odd\" name"), [3])
    }

    func testWriteReplacesAnExistingFileAndLeavesNoTemporaryFiles() throws {
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent("ckpt.safetensors")
        for value in [Float(1), 2] {
            var writer = SafeTensorsWriter()
            try writer.add("w", shape: [1], floats: [value])
            try writer.write(to: url, metadata: ["step": "\(value)"])
        }
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).floats("w"), [2])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.safetensors"])
    }

    func testWriteIntoAMissingDirectoryFailsClearly() throws {
        let url = try temporaryDirectory(self).appendingPathComponent("no/such/dir/x.safetensors")
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], floats: [1])
        let error = safeTensorsError { try writer.write(to: url, metadata: [:]) }
        guard case .writeFailed(let file, _)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(file, url.path)
        XCTAssertTrue(String(describing: error).contains("x.safetensors"))
    }

    func testAddRejectsDuplicatesReservedNamesAndWrongShapes() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2], floats: [1, 2])
        for (name, shape, count) in [("w", [2], 2), ("__metadata__", [1], 1), ("v", [2, 2], 3), ("u", [-1], 1)] {
            let error = safeTensorsError { try writer.add(name, shape: shape, floats: [Float](repeating: 0, count: count)) }
            guard case .invalidTensor(let tensor, _)? = error else { return XCTFail("\(name): got \(String(describing: error))") }
            XCTAssertEqual(tensor, name)
            XCTAssertTrue(String(describing: error).contains("'\(name)'"))
        }
        // The failed adds left the writer unchanged.
        let file = try SafeTensorsFile(contentsOf: save(writer.serialized(metadata: [:]), as: "w.safetensors",
                                                         in: temporaryDirectory(self)))
        XCTAssertEqual(file.names, ["w"])
    }

    func testAccessorErrorsNameTheFileAndTensor() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        try writer.add("steps", shape: [1], int64s: [5])
        let url = try save(writer.serialized(metadata: [:]), as: "acc.safetensors", in: temporaryDirectory(self))
        let file = try SafeTensorsFile(contentsOf: url)

        var small = [Float](repeating: 0, count: 5)
        let count = safeTensorsError { try file.copyFloats("w", into: &small, count: small.count) }
        XCTAssertEqual(count, .countMismatch(file: url.path, tensor: "w", expected: 6, given: 5))
        XCTAssertEqual(small, [0, 0, 0, 0, 0])

        let missing = safeTensorsError { _ = try file.floats("nope") }
        XCTAssertEqual(missing, .missingTensor(file: url.path, tensor: "nope"))

        let wrong = safeTensorsError { _ = try file.floats("steps") }
        XCTAssertEqual(wrong, .wrongDType(file: url.path, tensor: "steps", dtype: "I64", expected: ["F32", "F64"]))
        let wrongInt = safeTensorsError { _ = try file.int64s("w") }
        XCTAssertEqual(wrongInt, .wrongDType(file: url.path, tensor: "w", dtype: "F32", expected: ["I64", "I32"]))
        for error in [count, missing, wrong, wrongInt] {
            XCTAssertTrue(String(describing: error).contains(url.path))
        }
    }
}
