// IDX loading, good and crafted-bad files (raw and gzipped): bad magic, truncated data, trailing bytes,
// wrong dimensions, count mismatch, corrupt gzip. Each error must name the file and the byte offset.
import CZlib
import Datasets
import Foundation
import XCTest

final class IDXTests: XCTestCase {
    private func write(_ bytes: [UInt8], _ name: String, in dir: URL, gzip: Bool) throws -> URL {
        let url = dir.appendingPathComponent(gzip ? name + ".gz" : name)
        if gzip { try Gzip.write(bytes, to: url) } else { try Data(bytes).write(to: url) }
        return url
    }

    private func sampleImages(count: Int = 3, h: Int = 4, w: Int = 5) -> [UInt8] {
        (0 ..< count * h * w).map { UInt8(truncatingIfNeeded: $0 * 7) }
    }

    func testRoundTripRawAndGzip() throws {
        let dir = try makeScratchDirectory(self)
        let pixels = sampleImages()
        for gz in [false, true] {
            let url = try write(IDX.encodeImages(pixels, count: 3, height: 4, width: 5), "a-images-idx3-ubyte", in: dir, gzip: gz)
            let r = try IDX.readImages(url)
            XCTAssertEqual([r.count, r.height, r.width], [3, 4, 5])
            XCTAssertEqual(r.pixels, pixels)
            let lurl = try write(IDX.encodeLabels([7, 0, 255]), "a-labels-idx1-ubyte", in: dir, gzip: gz)
            XCTAssertEqual(try IDX.readLabels(lurl), [7, 0, 255])
        }
    }

    func testBadMagic() throws {
        let dir = try makeScratchDirectory(self)
        var bytes = IDX.encodeImages(sampleImages(), count: 3, height: 4, width: 5)
        bytes[2] = 0x0D  // float32 type instead of ubyte
        let url = try write(bytes, "x-images-idx3-ubyte", in: dir, gzip: true)
        assertDatasetError(try IDX.readImages(url), mentions: [url.path, "byte offset 0", "00000d03", "00000803"])
        // A labels file given where images are expected is also a magic mismatch (ndims 1, not 3).
        let labels = try write(IDX.encodeLabels([1, 2, 3]), "y-labels-idx1-ubyte", in: dir, gzip: false)
        assertDatasetError(try IDX.readImages(labels), mentions: [labels.path, "byte offset 0", "00000801"])
    }

    func testTruncatedData() throws {
        let dir = try makeScratchDirectory(self)
        let full = IDX.encodeImages(sampleImages(), count: 3, height: 4, width: 5)  // 16 + 60 bytes
        let url = try write(Array(full[..<50]), "t-images-idx3-ubyte", in: dir, gzip: true)
        assertDatasetError(try IDX.readImages(url), mentions: [url.path, "byte offset 50", "pixel data", "76 bytes"])
        let header = try write(Array(full[..<10]), "h-images-idx3-ubyte", in: dir, gzip: false)
        assertDatasetError(try IDX.readImages(header), mentions: [header.path, "byte offset 10", "IDX header"])
        let labels = try write(Array(IDX.encodeLabels([1, 2, 3, 4])[..<10]), "l-labels-idx1-ubyte", in: dir, gzip: false)
        assertDatasetError(try IDX.readLabels(labels), mentions: [labels.path, "byte offset 10", "label data"])
    }

    func testTrailingBytes() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write(IDX.encodeLabels([1, 2]) + [9, 9, 9], "l-labels-idx1-ubyte", in: dir, gzip: false)
        assertDatasetError(try IDX.readLabels(url), mentions: [url.path, "byte offset 10", "3 unexpected bytes"])
    }

    func testWrongDimensions() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write(IDX.encodeImages(sampleImages(), count: 3, height: 4, width: 5), "d-images-idx3-ubyte",
                            in: dir, gzip: true)
        assertDatasetError(try IDX.readImages(url, expectedSize: (28, 28)),
                           mentions: [url.path, "byte offset 8", "4x5", "28x28"])
        let zero = try write(IDX.encodeImages([], count: 0, height: 28, width: 28), "z-images-idx3-ubyte", in: dir, gzip: false)
        assertDatasetError(try IDX.readImages(zero), mentions: [zero.path, "byte offset 4", "0x28x28"])
    }

    func testCorruptGzip() throws {
        let dir = try makeScratchDirectory(self)
        let good = try write(IDX.encodeImages(sampleImages(count: 50), count: 50, height: 4, width: 5), "g-images-idx3-ubyte",
                             in: dir, gzip: true)
        let compressed = try Data(contentsOf: good)
        let cut = dir.appendingPathComponent("cut-images-idx3-ubyte.gz")
        try compressed.prefix(compressed.count / 2).write(to: cut)
        assertDatasetError(try IDX.readImages(cut), mentions: [cut.path, "gzip"])
    }

    func testMissingFile() throws {
        let dir = try makeScratchDirectory(self)
        let url = dir.appendingPathComponent("nope-images-idx3-ubyte.gz")
        assertDatasetError(try IDX.readImages(url, fixIfMissing: "Do X."), mentions: [url.path, "not found", "Do X."])
    }

    func testLabelRange() throws {
        let dir = try makeScratchDirectory(self)
        let url = try write(IDX.encodeLabels([1, 2, 12]), "r-labels-idx1-ubyte", in: dir, gzip: false)
        assertDatasetError(try IDX.readLabels(url, maxLabel: 9), mentions: [url.path, "label 12", "byte offset 10", "0...9"])
    }
}

final class GzipLimitTests: XCTestCase {
    /// A 2 MB gzip bomb (an IDX header for 10 images, then 2 GiB of zeros) is refused after reading what the
    /// header declares plus a little, not after inflating 2 GiB.
    func testAGzipBombIsRefusedAtTheSizeItsHeaderDeclares() throws {
        let dir = try makeScratchDirectory(self)
        let url = dir.appendingPathComponent("bomb-images-idx3-ubyte.gz")
        guard let file = gzopen(url.path, "wb1") else { return XCTFail("gzopen") }
        var header = IDX.encodeImages([UInt8](repeating: 0, count: 10 * 28 * 28), count: 10, height: 28, width: 28)
        header = Array(header.prefix(16))
        _ = header.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        let zeros = [UInt8](repeating: 0, count: 1 << 24)
        for _ in 0..<128 { _ = zeros.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) } }  // 2 GiB
        gzclose(file)
        var before = rusage(); getrusage(RUSAGE_SELF.rawValue, &before)
        assertDatasetError(try IDX.readImages(url), mentions: [url.path, "larger than"])
        var after = rusage(); getrusage(RUSAGE_SELF.rawValue, &after)
        XCTAssertLessThan(after.ru_maxrss - before.ru_maxrss, 200_000, "peak RSS grew by \(after.ru_maxrss - before.ru_maxrss) KiB")
    }
}
