// Reading PyTorch's reference file and writing all of it back, byte for byte.
import Foundation
import XCTest
@testable import SafeTensors

final class ReferenceFileTests: XCTestCase {
    func testMetadataAndConfig() throws {
        let file = try SafeTensorsFile(contentsOf: referenceURL())
        XCTAssertEqual(file.metadata["format"], "controlnet-reference/1")
        let config = try XCTUnwrap(file.metadata["config"])
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any])
        XCTAssertEqual(parsed["image_size"] as? Int, 8)
        XCTAssertEqual(parsed["model_channels"] as? Int, 8)
        XCTAssertEqual(parsed["channel_mult"] as? [Int], [1, 2])
        XCTAssertEqual(parsed["hint_block_channels"] as? [Int], [4, 8])
        XCTAssertEqual(file.names.count, 507)
    }

    func testTensorInfoAndValues() throws {
        let file = try SafeTensorsFile(contentsOf: referenceURL())
        let t = try XCTUnwrap(file.info("input.t"))
        XCTAssertEqual(t.dtype, .i64)
        XCTAssertEqual(t.shape, [2])
        XCTAssertEqual(t.byteRange, 0..<16)
        XCTAssertEqual(try file.int64s("input.t"), [3, 917])

        XCTAssertEqual(file.info("control.hint_block.1.weight")?.shape, [8, 4, 3, 3])
        XCTAssertEqual(file.info("control.input_blocks.1.0.time_proj.weight")?.shape, [8, 32])
        XCTAssertEqual(file.info("input.x0")?.shape, [2, 1, 8, 8])
        XCTAssertEqual(file.info("expect.loss")?.shape, [1])
        XCTAssertEqual(file.info("control.hint_block.0.bias")?.dtype, .f32)
        XCTAssertNil(file.info("no.such.tensor"))

        let weight = try file.floats("control.hint_block.1.weight")
        XCTAssertEqual(weight.count, 8 * 4 * 3 * 3)
        XCTAssertTrue(weight.allSatisfy(\.isFinite))
        XCTAssertTrue(weight.contains { $0 != 0 })
        var copied = [Float](repeating: .nan, count: weight.count)
        try file.copyFloats("control.hint_block.1.weight", into: &copied, count: copied.count)
        XCTAssertEqual(copied, weight)

        let loss = try file.floats("expect.loss")
        XCTAssertEqual(loss.count, 1)
        XCTAssertGreaterThan(loss[0], 0)
    }

    func testNamesAreInOffsetOrder() throws {
        let file = try SafeTensorsFile(contentsOf: referenceURL())
        let starts = file.names.map { file.info($0)!.byteRange.lowerBound }
        XCTAssertEqual(starts, starts.sorted())
        XCTAssertEqual(file.names.first, "input.t")
    }

    /// Every tensor written back in offset order reproduces the reference's data section exactly,
    /// and reading our file gives the same names, dtypes, shapes, bytes and metadata.
    func testRoundTripPreservesEveryByte() throws {
        let url = try referenceURL()
        let original = try SafeTensorsFile(contentsOf: url)
        var writer = SafeTensorsWriter()
        for name in original.names {
            let t = original.info(name)!
            try original.withRawBytes(name) { try writer.add(name, dtype: t.dtype, shape: t.shape, bytes: $0) }
        }
        let out = try temporaryDirectory(self).appendingPathComponent("copy.safetensors")
        try writer.write(to: out, metadata: original.metadata)

        let copy = try SafeTensorsFile(contentsOf: out)
        XCTAssertEqual(copy.metadata, original.metadata)
        XCTAssertEqual(copy.tensors, original.tensors)
        for name in original.names {
            let a = try original.withRawBytes(name) { [UInt8]($0) }
            let b = try copy.withRawBytes(name) { [UInt8]($0) }
            XCTAssertEqual(a, b, name)
        }

        let referenceBytes = try [UInt8](Data(contentsOf: url))
        let ourBytes = try [UInt8](Data(contentsOf: out))
        let referenceData = referenceBytes[(8 + Int(headerLength(referenceBytes)))...]
        let ourData = ourBytes[(8 + Int(headerLength(ourBytes)))...]
        XCTAssertEqual(Array(referenceData), Array(ourData))
        XCTAssertEqual(ourBytes, writer.serialized(metadata: original.metadata))
    }

    private func headerLength(_ bytes: [UInt8]) -> UInt64 {
        bytes[0..<8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}
