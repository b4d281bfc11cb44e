// The generated fill-circles task (fill50k layout): byte-identical for a seed, the drawing matches the prompt and
// the geometry rules; and the prompt vocabulary built from such rows.
import Datasets
import Foundation
import XCTest

final class FillCirclesTests: XCTestCase {
    private func files(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let walker = FileManager.default.enumerator(atPath: dir.path)
        while let path = walker?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(path).path, isDirectory: &isDir),
               !isDir.boolValue {
                out[path] = try Data(contentsOf: dir.appendingPathComponent(path))
            }
        }
        return out
    }

    func testSameSeedGivesByteIdenticalFiles() throws {
        let a = try makeScratchDirectory(self), b = try makeScratchDirectory(self), c = try makeScratchDirectory(self)
        try FillCircles.generate(count: 12, size: 32, seed: 42, to: a)
        try FillCircles.generate(count: 12, size: 32, seed: 42, to: b)
        try FillCircles.generate(count: 12, size: 32, seed: 43, to: c)
        let fa = try files(a), fb = try files(b), fc = try files(c)
        XCTAssertEqual(fa.count, 25, "prompt.json + 12 sources + 12 targets")
        XCTAssertEqual(fa, fb)
        XCTAssertNotEqual(fa["prompt.json"], fc["prompt.json"])
        // Sample i depends only on (seed, i): a longer run extends a shorter one.
        let d = try makeScratchDirectory(self)
        try FillCircles.generate(count: 5, size: 32, seed: 42, to: d)
        XCTAssertEqual(try files(d)["target/4.png"], fa["target/4.png"])
        let firstLine = String(decoding: fa["prompt.json"]!, as: UTF8.self).split(separator: "\n")[0]
        XCTAssertTrue(firstLine.hasPrefix(#"{"source": "source/0.png", "target": "target/0.png", "prompt": ""#), String(firstLine))
    }

    func testDrawingsMatchPromptsAndGeometry() throws {
        let dir = try makeScratchDirectory(self)
        let size = 40
        let prompts = try FillCircles.generate(count: 30, size: size, seed: 7, to: dir)
        let margin = FillCircles.margin(size: size)
        for i in 0 ..< 30 {
            let s = FillCircles.sample(index: i, size: size, seed: 7)
            XCTAssertEqual(prompts[i], s.prompt)
            XCTAssertNotEqual(s.fill, s.background)
            XCTAssertGreaterThanOrEqual(s.centerX - s.radius, margin)
            XCTAssertLessThanOrEqual(s.centerX + s.radius, size - 1 - margin)
            XCTAssertGreaterThanOrEqual(s.centerY - s.radius, margin)
            XCTAssertLessThanOrEqual(s.centerY + s.radius, size - 1 - margin)
            let target = try ImageFile.read(dir.appendingPathComponent("target/\(i).png"))
            let source = try ImageFile.read(dir.appendingPathComponent("source/\(i).png"))
            XCTAssertEqual([target.channels, source.channels], [3, 1])
            var inside = [0.0, 0.0, 0.0], outside = [0.0, 0.0, 0.0], nIn = 0.0, nOut = 0.0, outline = 0
            for y in 0 ..< size {
                for x in 0 ..< size {
                    let k = y * size + x
                    let rgb = (0 ..< 3).map { Double(target.pixels[k * 3 + $0]) }
                    if s.isInside(x: x, y: y) {
                        for c in 0 ..< 3 { inside[c] += rgb[c] }
                        nIn += 1
                    } else {
                        for c in 0 ..< 3 { outside[c] += rgb[c] }
                        nOut += 1
                    }
                    XCTAssertTrue(source.pixels[k] == 0 || source.pixels[k] == 255)
                    if source.pixels[k] == 255 {
                        outline += 1
                        XCTAssertTrue(s.isInside(x: x, y: y), "the outline lies on the disc's rim")
                    }
                }
            }
            XCTAssertEqual(FillCircles.nearestColor(r: inside[0] / nIn, g: inside[1] / nIn, b: inside[2] / nIn), s.fill)
            XCTAssertEqual(FillCircles.nearestColor(r: outside[0] / nOut, g: outside[1] / nOut, b: outside[2] / nOut),
                           s.background)
            XCTAssertGreaterThanOrEqual(outline, 4 * s.radius, "a closed ring")
            XCTAssertTrue(s.prompt.hasPrefix(FillCircles.palette[s.fill].name + " circle with "))
        }
        XCTAssertEqual(Set(FillCircles.allPrompts).count, 56)
        assertImageError(try FillCircles.generate(count: 1, size: 4, seed: 0, to: dir), mentions: ["size = 4"])
    }

    func testNearestColorIsUnambiguous() {
        // Any colour within 127 of a palette colour in every channel is nearest to it.
        for (i, c) in FillCircles.palette.enumerated() {
            let shift = { (v: UInt8) in Double(v) + (v == 0 ? 100 : -100) }
            XCTAssertEqual(FillCircles.nearestColor(r: shift(c.r), g: shift(c.g), b: shift(c.b)), i, c.name)
        }
    }

    func testPromptVocabularyLabelsAndSuggestions() {
        let rows = ["red circle with blue background", "", "blue circle with red background",
                    "red circle with blue background", "Zebra"]
        let v = PromptVocabulary(prompts: rows)
        XCTAssertEqual(v.prompts, ["Zebra", "blue circle with red background", "red circle with blue background"],
                       "sorted by code point: uppercase first, as Python's sorted()")
        XCTAssertEqual(v.labels(for: rows), [2, -1, 1, 2, 0])
        XCTAssertNil(v.label(of: "green circle"))
        XCTAssertEqual(v.closest(to: "red circle with blu background", limit: 2),
                       ["red circle with blue background", "blue circle with red background"])
        XCTAssertTrue(v.unknownPromptMessage("zebra").contains("closest known: 'Zebra'"))
        XCTAssertEqual(editDistance(Array("kitten"), Array("sitting")), 3)
        XCTAssertEqual(editDistance(Array(""), Array("abc")), 3)
    }
}
