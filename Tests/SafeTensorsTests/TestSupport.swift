// Helpers shared by the SafeTensors tests: temporary directories and hand-built (possibly broken) files.
import Foundation
import XCTest
import TestSupport
@testable import SafeTensors

/// A fresh directory under the system temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("safetensors-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A file made of an 8-byte little-endian length, `header` verbatim (no padding), then `data`.
func craftedFile(header: String, data: [UInt8], lengthPrefix: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    let length = lengthPrefix ?? UInt64(json.count)
    return withUnsafeBytes(of: length.littleEndian) { [UInt8]($0) } + json + data
}

/// Writes `bytes` to a new file in `dir` and returns its URL.
func save(_ bytes: [UInt8], as name: String, in dir: URL) throws -> URL {
    let url = dir.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url
}

/// Runs `body` and returns the SafeTensorsError it throws, failing the test if it throws nothing or another error.
func safeTensorsError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> SafeTensorsError? {
    do {
        try body()
        XCTFail("expected a SafeTensorsError, nothing was thrown", file: file, line: line)
    } catch let error as SafeTensorsError {
        return error
    } catch {
        XCTFail("expected a SafeTensorsError, got \(error)", file: file, line: line)
    }
    return nil
}

/// The reference file made by PyTorch (a copy of shared/reference/tiny.safetensors, in TestSupport's fixtures).
func referenceURL() throws -> URL {
    try ReferenceFixtures.url("tiny")
}
