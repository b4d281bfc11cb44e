// sample and eval replace their own kind of output and nothing else: a PNG over a PNG, JSON over JSON, a samples
// file over a samples file, and an empty file; weights, or any other file, at an output path are refused by option.
import XCTest
import Foundation
import Model
import SafeTensors
import Training

final class OutputReplacementTests: XCTestCase {
    func testOnlyAFileOfTheKindAnOptionWritesIsReplaced() throws {
        let ws = try Workspace()
        let weights = try ws.writeBase()
        let png = ws.path("grid.png"), json = ws.path("eval.json"), samples = ws.path("samples.safetensors")
        let empty = ws.path("empty"), text = ws.path("notes.txt")
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0]).write(to: URL(fileURLWithPath: png))
        try Data(" \n{\"a\": 1}".utf8).write(to: URL(fileURLWithPath: json))
        var w = SafeTensorsWriter()
        try w.add("images", shape: [1, 1, 2, 2], floats: [0, 0, 0, 0])
        try w.write(to: URL(fileURLWithPath: samples), metadata: ["sampler": "ddim"])
        try Data().write(to: URL(fileURLWithPath: empty))
        try Data("mine".utf8).write(to: URL(fileURLWithPath: text))

        XCTAssertNoThrow(try OutputReplacement.check([("--grid", png, .png), ("--json", json, .json),
                                                      ("--out", samples, .samples), ("--grid", empty, .png),
                                                      ("--out", ws.path("new.safetensors"), .samples)]))
        assertRefused(try OutputReplacement.check([("--out", weights, .samples)]),
                      ["--out", weights, "is not a samples file"])
        assertRefused(try OutputReplacement.check([("--grid", samples, .png)]), ["--grid", "is not a PNG image"])
        assertRefused(try OutputReplacement.check([("--json", text, .json)]), ["--json", "notes.txt", "is not a JSON report"])
        assertRefused(try OutputReplacement.check([("--out", json, .samples)]), ["--out", "eval.json"])
    }
}
