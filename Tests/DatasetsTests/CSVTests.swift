// The MNIST-5k style CSV: parsing, and crafted bad files that must name the file and the line.
import Datasets
import Foundation
import XCTest

final class CSVTests: XCTestCase {
    private func write(_ text: String, _ name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        if name.hasSuffix(".gz") { try Gzip.write(Array(text.utf8), to: url) } else { try text.write(to: url, atomically: true, encoding: .utf8) }
        return url
    }

    /// Rows of 4 pixels (2x2) then the label.
    private let good = "0,255,10,20,3\r\n1,2,3,4,0\n5,6,7,8,9\n\n"

    func testParsesRowsAndInfersSquareImages() throws {
        let dir = try makeScratchDirectory(self)
        for name in ["g.csv", "g.csv.gz"] {
            let r = try CSVImages.read(write(good, name, in: dir))
            XCTAssertEqual([r.count, r.height, r.width], [3, 2, 2])
            XCTAssertEqual(r.pixels, [0, 255, 10, 20, 1, 2, 3, 4, 5, 6, 7, 8])
            XCTAssertEqual(r.labels, [3, 0, 9])
        }
    }

    func testNonNumericField() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write("0,1,2,3,4\n0,1,x2,3,4\n", "bad.csv.gz", in: dir)
        assertDatasetError(try CSVImages.read(url), mentions: [url.path, "line 2", "field 3", "'x2'"])
        let empty = try write("0,1,2,3,4\n0,1,2,,4\n", "empty.csv", in: dir)
        assertDatasetError(try CSVImages.read(empty), mentions: [empty.path, "line 2", "field 4"])
        let float = try write("0,1.5,2,3,4\n", "float.csv", in: dir)
        assertDatasetError(try CSVImages.read(float), mentions: [float.path, "line 1", "field 2", "'1.5'"])
    }

    func testPixelOutOfRange() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write("0,1,2,3,4\n0,1,2,256,4\n", "range.csv", in: dir)
        assertDatasetError(try CSVImages.read(url), mentions: [url.path, "line 2", "field 4", "0...255"])
    }

    func testRaggedRow() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write("0,1,2,3,4\n0,1,2,3\n", "ragged.csv", in: dir)
        assertDatasetError(try CSVImages.read(url), mentions: [url.path, "line 2", "4 fields", "expected 5"])
    }

    func testWrongDimensions() throws {
        let dir = try makeScratchDirectory(self)
        let notSquare = try write("0,1,2,3\n", "tri.csv", in: dir)  // 3 pixels: no square image
        assertDatasetError(try CSVImages.read(notSquare), mentions: [notSquare.path, "square"])
        let url = try write(good, "small.csv", in: dir)
        assertDatasetError(try CSVImages.read(url, expectedSize: (28, 28)), mentions: [url.path, "line 1", "expected 785"])
    }

    func testLabelOutOfRange() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write("0,1,2,3,4\n0,1,2,3,10\n", "label.csv", in: dir)
        assertDatasetError(try CSVImages.read(url, maxLabel: 9), mentions: [url.path, "line 2", "field 5", "0...9"])
    }

    /// A CSV declares no size: a small .csv.gz that inflates past the cap (a gzip bomb) is refused naming the
    /// file and the limit, before the text is parsed (or memory runs out).
    func testAGzipBombIsRefusedAtTheCap() throws {
        XCTAssertEqual(CSVImages.maxBytes, 512 << 20)
        let dir = try makeScratchDirectory(self)
        // 4 MiB of one repeated row compresses to a few KiB.
        let row = "0,0,0,0,1\n"
        let bomb = try write(String(repeating: row, count: (4 << 20) / row.utf8.count), "bomb.csv.gz", in: dir)
        let compressed = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: bomb.path)[.size] as? Int)
        XCTAssertLessThan(compressed, 64 << 10)
        assertDatasetError(try CSVImages.read(bomb, limit: 1 << 20), mentions: [bomb.path, "1048576 bytes", "gzip bomb"])
        XCTAssertThrowsError(try CSVImages.read(bomb, limit: 1 << 20)) { error in
            guard case DatasetError.tooLarge(let path, let limit)? = error as? DatasetError else {
                return XCTFail("expected tooLarge, got \(error)")
            }
            XCTAssertEqual(path, bomb.path); XCTAssertEqual(limit, 1 << 20)
        }
        // Under the cap the same file reads.
        XCTAssertEqual(try CSVImages.read(bomb, limit: 8 << 20).count, (4 << 20) / row.utf8.count)
    }
}
