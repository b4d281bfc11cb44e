// Paired datasets: both layouts, custom columns, and every refusal (both or neither manifest, unknown column, bad
// JSON line, paths leaving the directory, missing and corrupt images) naming the file, line and field; skipBad.
import Randomness
import Datasets
import Foundation
import XCTest

/// Writes an image-folder dataset: DIR/metadata.jsonl with the given JSON lines, and a PNG/JPEG for every path.
func writeImageFolder(_ dir: URL, lines: [String], images: [String: (width: Int, height: Int, seed: UInt64)]) throws {
    for (path, spec) in images {
        let url = dir.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var rng = SplitMix64(seed: spec.seed)
        let rgb = (0 ..< spec.width * spec.height * 3).map { _ in UInt8(rng.next(below: 256)) }
        if path.hasSuffix(".jpg") {
            let bytes = try JPEG.encode(pixels: rgb, width: spec.width, height: spec.height, channels: 3)
            try Data(bytes).write(to: url)
        } else {
            try PNG.write(rgb: rgb, width: spec.width, height: spec.height, to: url)
        }
    }
    try Data(lines.joined(separator: "\n").utf8).write(to: dir.appendingPathComponent("metadata.jsonl"))
}

final class PairedDatasetTests: XCTestCase {
    func testFill50kLayoutDecodesLikeTheManualPipeline() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        let prompts = try FillCircles.generate(count: 5, size: 24, seed: 1, to: dir)
        let data = try PairedDataset.open(directory: dir)
        XCTAssertEqual(data.layout, .fill50k)
        XCTAssertEqual([data.imageColumn, data.conditioningColumn, data.captionColumn], ["target", "source", "prompt"])
        XCTAssertEqual(data.rows.map(\.line), [1, 2, 3, 4, 5])
        XCTAssertEqual(data.rows.map(\.prompt), prompts)
        XCTAssertEqual(data.rows[3].image, "target/3.png")
        XCTAssertEqual(data.rows[3].conditioning, "source/3.png")
        XCTAssertEqual(try PairedDataset.open(directory: dir.appendingPathComponent("prompt.json")).rows, data.rows,
                       "the manifest's own path names its directory")

        let settings = try DecodeSettings(size: 16, imageChannels: 3, conditioningChannels: 1, filter: .bilinear)
        let loaded = try data.load(settings: settings, cacheDirectory: cache)
        XCTAssertEqual(loaded.count, 5)
        XCTAssertEqual(loaded.prompts, prompts)
        for i in [0, 4] {
            let target = try ImageFile.read(dir.appendingPathComponent("target/\(i).png"))
            let want = ImageResize.resizeShortSideAndCenterCrop(try target.planar(channels: 3), channels: 3,
                                                                height: 24, width: 24, size: 16, filter: .bilinear)
            XCTAssertEqual(Array(loaded.images[i * 768 ..< (i + 1) * 768]), want, "image \(i), (C, S, S)")
            let direct = try data.decodeRow(i, settings: settings)
            XCTAssertEqual(direct.image, want)
            XCTAssertEqual(Array(loaded.conditions[i * 256 ..< (i + 1) * 256]), direct.condition)
        }
        var floats = [Float](repeating: 0, count: 768)
        loaded.image(1, into: &floats)
        XCTAssertEqual(floats[5], Float(loaded.images[768 + 5]) / 127.5 - 1)
        loaded.condition(1, into: &floats)
        XCTAssertEqual(floats[7], Float(loaded.conditions[256 + 7]) / 255)
    }

    func testImageFolderLayoutWithChosenColumnsJPEGAndBlankLines() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        try writeImageFolder(dir, lines: [
            #"{"file_name": "img/a.jpg", "cond": "hint/a.png", "caption": "a cat", "extra": 1}"#,
            "",
            #"{"file_name": "img/b.png", "cond": "hint/b.png", "caption": ""}"#,
            #"{"file_name": "img/c.png", "cond": "hint/b.png", "caption": "a cat"}"#,
        ], images: ["img/a.jpg": (40, 30, 1), "img/b.png": (20, 50, 2), "img/c.png": (9, 9, 3),
                    "hint/a.png": (40, 30, 4), "hint/b.png": (16, 16, 5)])
        let data = try PairedDataset.open(directory: dir, imageColumn: "image", conditioningColumn: "cond",
                                          captionColumn: "caption")
        XCTAssertEqual(data.layout, .imageFolder)
        XCTAssertEqual(data.imageColumn, "file_name", "diffusers' --image_column image names file_name")
        XCTAssertEqual(data.rows.map(\.line), [1, 3, 4], "blank lines are skipped but counted")
        let loaded = try data.load(settings: try DecodeSettings(size: 8, imageChannels: 1, conditioningChannels: 3),
                                   cacheDirectory: cache)
        XCTAssertEqual(loaded.count, 3)
        XCTAssertEqual(loaded.images.count, 3 * 64)
        XCTAssertEqual(loaded.conditions.count, 3 * 3 * 64)
        XCTAssertEqual(loaded.vocabulary.prompts, ["a cat"])
        XCTAssertEqual(loaded.labels, [0, -1, 0], "empty prompt = no label")
        XCTAssertEqual(loaded.lines, [1, 3, 4])
        // Defaults (file_name, conditioning_image, text) are not in these rows: refused, listing what is there.
        assertImageError(try PairedDataset.open(directory: dir), mentions: [
            "metadata.jsonl", "'conditioning_image'", "'caption', 'cond', 'extra', 'file_name'"])
    }

    func testLayoutRefusals() throws {
        let dir = try makeScratchDirectory(self)
        assertImageError(try PairedDataset.open(directory: dir), mentions: [dir.path, "prompt.json", "metadata.jsonl"]) {
            if case .noLayout = $0 { return true } else { return false }
        }
        try Data().write(to: dir.appendingPathComponent("prompt.json"))
        try Data().write(to: dir.appendingPathComponent("metadata.jsonl"))
        assertImageError(try PairedDataset.open(directory: dir), mentions: ["both prompt.json and metadata.jsonl"])
        try FileManager.default.removeItem(at: dir.appendingPathComponent("metadata.jsonl"))
        assertImageError(try PairedDataset.open(directory: dir), mentions: ["prompt.json", "no usable rows"])
        try Data(#"{"source": "s.png", "target": "t.png", "prompt": "x"}"#.utf8).write(to: dir.appendingPathComponent("prompt.json"))
        assertImageError(try PairedDataset.open(directory: dir, captionColumn: "text"),
                         mentions: ["no column 'text'", "'prompt', 'source', 'target'"])
        try Data(#"{"source": "s.png", "target": "t.png", "prompt": "x"}"#.utf8 + [10] + Array("[1, 2]\n".utf8))
            .write(to: dir.appendingPathComponent("prompt.json"))
        assertImageError(try PairedDataset.open(directory: dir), mentions: ["prompt.json, line 2", "not an object"])
        try Data("{\"source\": \"s.png\", \"target\": \"t.png\", \"prompt\": \"x\"}\n{\"source\": 3, \"target\": \"t.png\"}\n".utf8)
            .write(to: dir.appendingPathComponent("prompt.json"))
        assertImageError(try PairedDataset.open(directory: dir), mentions: ["line 2", "'source'", "not a string"])
        try Data("{\"source\": \"s.png\", \"target\": \"t.png\", \"prompt\": \"x\"}\n{oops\n".utf8)
            .write(to: dir.appendingPathComponent("prompt.json"))
        assertImageError(try PairedDataset.open(directory: dir), mentions: ["line 2", "not valid JSON"])
    }

    func testPathsLeavingTheDirectoryAreRefusedNamingTheRow() throws {
        let outside = try makeScratchDirectory(self), dir = try makeScratchDirectory(self)
        let cache = try makeScratchDirectory(self)
        let images: [String: (width: Int, height: Int, seed: UInt64)] = ["a.png": (8, 8, 1), "b.png": (8, 8, 2)]
        let good = #"{"file_name": "a.png", "conditioning_image": "b.png", "text": "t"}"#
        for (bad, reason) in [(#"{"file_name": "../a.png", "conditioning_image": "b.png", "text": "t"}"#, "'..'"),
                              (#"{"file_name": "a.png", "conditioning_image": "/etc/passwd", "text": "t"}"#, "absolute"),
                              (#"{"file_name": "sub/../../x.png", "conditioning_image": "b.png", "text": "t"}"#, "'..'"),
                              (#"{"file_name": "a.png\u0000.bak", "conditioning_image": "b.png", "text": "t"}"#, "NUL")] {
            try writeImageFolder(dir, lines: [good, bad], images: images)
            assertImageError(try PairedDataset.open(directory: dir), mentions: ["metadata.jsonl, line 2", reason])
        }
        // A symlink inside the directory that points outside it.
        try PNG.write(gray: [1, 2, 3, 4], width: 2, height: 2, to: outside.appendingPathComponent("secret.png"))
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("link.png"),
                                                   withDestinationURL: outside.appendingPathComponent("secret.png"))
        try writeImageFolder(dir, lines: [good, #"{"file_name": "link.png", "conditioning_image": "b.png", "text": "t"}"#],
                             images: images)
        let data = try PairedDataset.open(directory: dir)
        let settings = try DecodeSettings(size: 4, imageChannels: 3, conditioningChannels: 3)
        for skipBad in [false, true] {
            assertImageError(try data.load(settings: settings, cacheDirectory: cache, skipBad: skipBad),
                             mentions: ["line 2", "link.png", "symlink", "outside"])
        }
        // A symlink that stays inside is fine.
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("inside.png"),
                                                   withDestinationURL: dir.appendingPathComponent("a.png"))
        try writeImageFolder(dir, lines: [good, #"{"file_name": "inside.png", "conditioning_image": "b.png", "text": "t"}"#],
                             images: images)
        XCTAssertEqual(try PairedDataset.open(directory: dir).load(settings: settings, cacheDirectory: cache).count, 2)
    }

    func testBadImagesNameFileAndLineUnlessSkipped() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        try FillCircles.generate(count: 6, size: 16, seed: 2, to: dir)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("target/2.png"))
        var damaged = try [UInt8](Data(contentsOf: dir.appendingPathComponent("source/4.png")))
        damaged[damaged.count - 20] ^= 0x55
        try Data(damaged).write(to: dir.appendingPathComponent("source/4.png"))
        let data = try PairedDataset.open(directory: dir)
        let settings = try DecodeSettings(size: 8, imageChannels: 3, conditioningChannels: 1)
        assertImageError(try data.load(settings: settings, cacheDirectory: cache),
                         mentions: ["prompt.json, line 3", "target 'target/2.png'", "not found"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0.hasSuffix(".cache") },
                       [], "nothing cached from a failed build")
        var reports: [(Int, Int)] = []
        let loaded = try data.load(settings: settings, cacheDirectory: cache, skipBad: true) { reports.append(($0, $1)) }
        XCTAssertEqual(loaded.count, 4)
        XCTAssertEqual(loaded.lines, [1, 2, 4, 6])
        XCTAssertEqual(loaded.skipped.map(\.line), [3, 5])
        XCTAssertEqual(loaded.skipped.map(\.file), ["target/2.png", "source/4.png"])
        XCTAssertTrue(loaded.skipped[1].problem.contains("CRC"), loaded.skipped[1].problem)
        XCTAssertEqual(reports.last?.0, 6)
        XCTAssertEqual(reports.last?.1, 6)
        // The compacted cache holds the good rows in order.
        for (j, i) in [0, 1, 3, 5].enumerated() {
            let row = try data.decodeRow(i, settings: settings)
            XCTAssertEqual(Array(loaded.images[j * 192 ..< (j + 1) * 192]), row.image, "row \(i)")
            XCTAssertEqual(Array(loaded.conditions[j * 64 ..< (j + 1) * 64]), row.condition, "row \(i)")
        }
        // The same cache opened without skipBad refuses, naming the first bad row.
        assertImageError(try data.load(settings: settings, cacheDirectory: cache),
                         mentions: ["2 rows are bad", "line 3", "target/2.png"])
    }
}
