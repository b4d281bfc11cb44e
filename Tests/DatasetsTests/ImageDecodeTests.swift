// Decoding through libpng and libjpeg-turbo: every PNG variant against the samples in Fixtures/images/expected.json
// (written by scripts/fixtures/make_image_fixtures.py with pypng), JPEGs against Pillow's own decode, and damaged,
// truncated, foreign, missing and oversized files as typed errors (never a crash).
import Randomness
import Datasets
import Foundation
import XCTest

/// Fixtures/images/expected.json.
struct ImageFixtures {
    let json: [String: Any]

    init() throws {
        let data = try Data(contentsOf: Fixtures.url("images/expected.json"))
        json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func url(_ name: String) -> URL { Fixtures.url("images/" + name) }
    static func read(_ name: String) throws -> DecodedImage { try ImageFile.read(url(name)) }
}

final class ImageDecodeTests: XCTestCase {
    func testEveryPNGVariantDecodesToTheExpectedSamples() throws {
        let fixtures = try ImageFixtures()
        let names = fixtures.json.keys.filter { $0.hasPrefix("png-") }.sorted()
        XCTAssertEqual(names.count, 18, "gray 1/2/4/8/16 (+Adam7), GA 8/16, RGB 8/16, RGBA 8/16 (+Adam7), palettes, tRNS")
        for name in names {
            let entry = try XCTUnwrap(fixtures.json[name] as? [String: Any])
            let want = try XCTUnwrap(entry["pixels"] as? [Int]).map(UInt8.init)
            let image = try ImageFixtures.read(name)
            XCTAssertEqual([image.width, image.height], [13, 9], name)
            XCTAssertEqual(image.channels, entry["channels"] as? Int, name)
            XCTAssertEqual(image.pixels, want, name)
        }
    }

    func testJPEGsDecodeAsPillowDoes() throws {
        for name in ["jpeg-rgb-baseline", "jpeg-rgb-progressive", "jpeg-gray-baseline", "jpeg-gray-progressive"] {
            let image = try ImageFixtures.read(name + ".jpg")
            let pillow = try ImageFixtures.read(name + ".expected.png")
            XCTAssertEqual([image.width, image.height, image.channels], [45, 31, name.contains("gray") ? 1 : 3], name)
            XCTAssertEqual([pillow.width, pillow.height, pillow.channels], [image.width, image.height, image.channels])
            let worst = zip(image.pixels, pillow.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertEqual(worst, 0, "\(name): libjpeg-turbo here and Pillow's bundled one agree exactly")
        }
    }

    func testJPEGWarningsOtherThanTruncationAreAccepted() throws {
        // Two junk bytes between the APP0 segment and the next marker: libjpeg warns "Corrupt JPEG data: 2
        // extraneous bytes before marker 0xdb" and decodes the whole image (Pillow gives the same pixels).
        let jpeg = [UInt8](try Data(contentsOf: ImageFixtures.url("jpeg-rgb-baseline.jpg")))
        let next = 4 + (Int(jpeg[4]) << 8 | Int(jpeg[5]))
        XCTAssertEqual(Array(jpeg[0 ..< 4] + jpeg[next ..< next + 2]), [0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xDB])
        let junk = Array(jpeg[..<next]) + [0x12, 0x34] + Array(jpeg[next...])
        XCTAssertEqual(try ImageFile.decode(junk, path: "junk.jpg"), try ImageFile.decode(jpeg, path: "ok.jpg"))
        assertImageError(try ImageFixtures.read("jpeg-cmyk.jpg"), mentions: ["jpeg-cmyk.jpg", "CMYK", "convert"])
    }

    func testPNGWriteReadRoundTripForEveryChannelCount() throws {
        let dir = try makeScratchDirectory(self)
        let (w, h) = (17, 5)
        for channels in 1 ... 4 {
            let pixels = (0 ..< w * h * channels).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ channels) }
            let url = dir.appendingPathComponent("c\(channels).png")
            try PNG.write(pixels: pixels, width: w, height: h, channels: channels, to: url)
            let back = try ImageFile.read(url)
            XCTAssertEqual([back.width, back.height, back.channels], [w, h, channels])
            XCTAssertEqual(back.pixels, pixels)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["c1.png", "c2.png", "c3.png", "c4.png"], "no temporary files left behind")
    }

    func testJPEGEncodeDecodeRoundTrip() throws {
        let (w, h) = (40, 24)
        let rgb = (0 ..< w * h * 3).map { k -> UInt8 in UInt8((k / 3 % w) * 5 + (k % 3) * 20) }
        for progressive in [false, true] {
            let bytes = try JPEG.encode(pixels: rgb, width: w, height: h, channels: 3, quality: 95,
                                        progressive: progressive)
            let back = try ImageFile.decode(bytes, path: "mem.jpg")
            XCTAssertEqual([back.width, back.height, back.channels], [w, h, 3])
            let meanError = zip(back.pixels, rgb).map { abs(Int($0) - Int($1)) }.reduce(0, +) / rgb.count
            XCTAssertLessThanOrEqual(meanError, 3, "quality 95 is close to the original")
        }
    }

    func testDamagedFilesAreTypedErrorsNamingTheFile() throws {
        let png = try PNG.encode(pixels: [UInt8](repeating: 9, count: 64 * 3), width: 8, height: 8, channels: 3)
        var crc = png
        crc[40] ^= 0x01
        assertImageError(try ImageFile.decode(crc, path: "crc.png"), mentions: ["crc.png", "CRC mismatch"])
        assertImageError(try ImageFile.decode(Array(png.prefix(png.count - 20)), path: "cut.png"),
                         mentions: ["cut.png", "PNG"])
        let jpeg = try Data(contentsOf: ImageFixtures.url("jpeg-rgb-baseline.jpg"))
        assertImageError(try ImageFile.decode(Array(jpeg.prefix(jpeg.count - 40)), path: "cut.jpg"),
                         mentions: ["cut.jpg", "JPEG", "Premature end"])
        assertImageError(try ImageFile.decode(Array("GIF89a......".utf8), path: "x.gif"),
                         mentions: ["x.gif", "neither a PNG nor a JPEG", "47 49 46"])
        assertImageError(try ImageFile.decode([], path: "empty.png"), mentions: ["empty.png", "empty file"])
    }

    func testRandomCorruptionNeverCrashes() throws {
        // Flip bytes, truncate and splice at many places: each result decodes or throws an ImageDataError.
        let png = try Data(contentsOf: ImageFixtures.url("png-rgba8-adam7.png"))
        let jpeg = try Data(contentsOf: ImageFixtures.url("jpeg-rgb-progressive.jpg"))
        var rng = SplitMix64(seed: 11)
        var errors = 0
        for (name, original) in [("f.png", [UInt8](png)), ("f.jpg", [UInt8](jpeg))] {
            for trial in 0 ..< 300 {
                var bytes = original
                let at = Int(rng.next(below: UInt64(bytes.count)))
                switch trial % 3 {
                case 0: bytes[at] ^= UInt8(1 + rng.next(below: 255))
                case 1: bytes = Array(bytes.prefix(at))
                default: bytes.replaceSubrange(at ..< min(bytes.count, at + 16), with: [UInt8](repeating: 0xFF, count: 16))
                }
                do { _ = try ImageFile.decode(bytes, path: name) } catch is ImageDataError { errors += 1 }
            }
        }
        XCTAssertGreaterThan(errors, 300, "most damage is detected (the PNG CRCs catch every PNG flip)")
    }

    func testMissingUnreadableAndOversizedFiles() throws {
        let dir = try makeScratchDirectory(self)
        assertImageError(try ImageFile.read(dir.appendingPathComponent("none.png")), mentions: ["none.png", "not found"]) {
            if case .missingImage = $0 { return true } else { return false }
        }
        assertImageError(try ImageFile.read(dir), mentions: [dir.path, "not a regular file"])
        // An IHDR claiming 100000 x 100000 pixels (with a valid CRC) is refused before any allocation.
        var png = try PNG.encode(pixels: [0], width: 1, height: 1, channels: 1)
        for (at, v) in [(16, UInt32(100_000)), (20, UInt32(100_000))] {
            for k in 0 ..< 4 { png[at + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(k))) }
        }
        let crc = crc32Of(Array(png[12 ..< 29]))
        for k in 0 ..< 4 { png[29 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
        assertImageError(try ImageFile.decode(png, path: "huge.png"), mentions: ["huge.png", "100000x100000"])
    }

    func testLegacyPNGDecodeKeepsItsDatasetErrorContract() throws {
        var bytes = try PNG.encode(pixels: [1, 2, 3, 4], width: 2, height: 2, channels: 1)
        bytes[bytes.count - 20] ^= 0xFF
        assertDatasetError(try PNG.decode(bytes, path: "x.png"), mentions: ["x.png", "CRC", "IDAT"]) {
            if case let .badPNG(_, offset, _) = $0 { return offset > 8 } else { return false }
        }
    }
}

/// zlib's CRC-32 (the PNG chunk checksum), bit by bit: small and independent of the code under test.
func crc32Of(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0 ..< 8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return c ^ 0xFFFF_FFFF
}

/// Asserts that `body` throws an ImageDataError whose description contains every fragment.
func assertImageError<T>(_ body: @autoclosure () throws -> T, mentions fragments: [String],
                         file: StaticString = #filePath, line: UInt = #line,
                         matches check: (ImageDataError) -> Bool = { _ in true }) {
    do {
        _ = try body()
        XCTFail("expected an ImageDataError mentioning \(fragments)", file: file, line: line)
    } catch let error as ImageDataError {
        let text = error.description
        for f in fragments { XCTAssertTrue(text.contains(f), "'\(text)' should mention '\(f)'", file: file, line: line) }
        XCTAssertTrue(check(error), "unexpected error case: \(error)", file: file, line: line)
    } catch {
        XCTFail("expected an ImageDataError, got \(error)", file: file, line: line)
    }
}
