// Shared helpers for the Datasets tests: fixture lookup, scratch directories, the bit-packed edge-map reader.
import Datasets
import Foundation
import XCTest

enum Fixtures {
    /// A file under Tests/DatasetsTests/Fixtures (copied into the test bundle).
    static func url(_ relative: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(relative)
    }

    /// The repository root (for data/ and docs/), found from this source file's location.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Reads an edge file written by scripts/fixtures/make_canny_fixtures.py:
    /// "EDG1", big-endian uint32 count, height, width, low, high, then MSB-first packed bits of (count, H, W).
    /// Returns edges: (count, H, W) as 0/255.
    static func readEdges(_ url: URL) throws -> (count: Int, height: Int, width: Int, low: Int, high: Int, edges: [UInt8]) {
        let b = try Gzip.read(url)
        XCTAssertEqual(Array(b[0 ..< 4]), Array("EDG1".utf8), "edge fixture magic")
        func be(_ at: Int) -> Int { Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3]) }
        let (n, h, w, low, high) = (be(4), be(8), be(12), be(16), be(20))
        let total = n * h * w
        XCTAssertEqual(b.count - 24, (total + 7) / 8, "edge fixture size")
        var edges = [UInt8](repeating: 0, count: total)
        for k in 0 ..< total where b[24 + k >> 3] & (0x80 >> UInt8(k & 7)) != 0 { edges[k] = 255 }
        return (n, h, w, low, high, edges)
    }
}

/// A fresh temporary directory, removed when the test case finishes.
func makeScratchDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("datasets-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Asserts that `body` throws a DatasetError whose description contains every fragment.
func assertDatasetError<T>(_ body: @autoclosure () throws -> T, mentions fragments: [String],
                           file: StaticString = #filePath, line: UInt = #line,
                           matches check: (DatasetError) -> Bool = { _ in true }) {
    do {
        _ = try body()
        XCTFail("expected a DatasetError mentioning \(fragments)", file: file, line: line)
    } catch let error as DatasetError {
        let text = error.description
        for f in fragments { XCTAssertTrue(text.contains(f), "'\(text)' should mention '\(f)'", file: file, line: line) }
        XCTAssertTrue(check(error), "unexpected error case: \(error)", file: file, line: line)
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
    }
}
