// PNG writing (checked by decoding it back: signature, chunk CRCs, zlib stream, every filter), hint | image grids,
// and the loss plot.
import Datasets
import Foundation
import XCTest

final class ImageOutputTests: XCTestCase {
    func testGrayAndRGBRoundTrip() throws {
        let dir = try makeScratchDirectory(self)
        let (w, h) = (37, 23)
        // Content that makes every row filter worth choosing somewhere: gradients, noise and flat runs.
        let gray = (0 ..< w * h).map { k -> UInt8 in
            let (x, y) = (k % w, k / w)
            return y < 8 ? UInt8(x * 6) : y < 16 ? UInt8(truncatingIfNeeded: k &* 2654435761 >> 9) : UInt8(y * 9)
        }
        let url = dir.appendingPathComponent("g.png")
        try PNG.write(gray: gray, width: w, height: h, to: url)
        let g = try PNG.decode([UInt8](Data(contentsOf: url)))
        XCTAssertEqual([g.width, g.height, g.channels], [w, h, 1])
        XCTAssertEqual(g.pixels, gray)

        let rgb = (0 ..< w * h * 3).map { UInt8(truncatingIfNeeded: $0 * 31 + ($0 / (w * 3)) * 17) }
        let rurl = dir.appendingPathComponent("c.png")
        try PNG.write(rgb: rgb, width: w, height: h, to: rurl)
        let c = try PNG.decode([UInt8](Data(contentsOf: rurl)))
        XCTAssertEqual([c.width, c.height, c.channels], [w, h, 3])
        XCTAssertEqual(c.pixels, rgb)
    }

    func testCorruptedPNGIsRejected() throws {
        var bytes = try PNG.encode(pixels: [1, 2, 3, 4], width: 2, height: 2, channels: 1)
        bytes[bytes.count - 20] ^= 0xFF  // inside IDAT: its CRC no longer matches
        assertDatasetError(try PNG.decode(bytes, path: "x.png"), mentions: ["x.png", "CRC"])
    }

    func testUnwritablePathIsATypedError() {
        let url = URL(fileURLWithPath: "/nonexistent-dir/x.png")
        assertDatasetError(try PNG.write(gray: [0], width: 1, height: 1, to: url), mentions: [url.path])
    }

    func testPairsGridLayout() {
        let (h, w) = (3, 2)
        let hints: [Float] = (0 ..< 5 * 6).map { $0 % 2 == 0 ? 1 : 0 }
        let images: [Float] = [Float](repeating: -1, count: 5 * 6)
        let g = ImageGrid.pairs(hints: hints, images: images, count: 5, height: h, width: w, columns: 2)
        let pad = ImageGrid.cellPadding, cellW = 2 * w + ImageGrid.panelGap
        XCTAssertEqual(g.width, 2 * cellW + 3 * pad)
        XCTAssertEqual(g.height, 3 * h + 4 * pad)
        XCTAssertEqual(g.pixels.count, g.width * g.height)
        XCTAssertEqual(g.pixels[0], ImageGrid.background)
        // Cell 3 (row 1, column 1): hint pixel (0,0) is 1 -> 255, image pixel (0,0) is -1 -> 0.
        let x0 = pad + cellW + pad, y0 = pad + h + pad
        XCTAssertEqual(g.pixels[y0 * g.width + x0], 255)
        XCTAssertEqual(g.pixels[y0 * g.width + x0 + 1], 0)
        XCTAssertEqual(g.pixels[y0 * g.width + x0 + w], ImageGrid.background, "gap between hint and image")
        XCTAssertEqual(g.pixels[y0 * g.width + x0 + w + 1], 0, "image -1 maps to black")
        // The unused sixth cell stays background.
        XCTAssertEqual(g.pixels[(pad + 2 * (h + pad)) * g.width + x0], ImageGrid.background)
    }

    func testLossPlotDrawsAxesAndACurve() throws {
        let steps = Array(stride(from: 0, through: 5000, by: 50))
        let losses = steps.map { 0.02 + 0.5 * exp(-Double($0) / 800) + ($0 % 200 == 0 ? 0.01 : 0) }
        let p = LossPlot.render(steps: steps, losses: losses, width: 320, height: 200)
        XCTAssertEqual(p.rgb.count, 320 * 200 * 3)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(p.rgb[(y * 320 + x) * 3 ..< (y * 320 + x) * 3 + 3]) }
        var black = 0, blue = 0
        for k in 0 ..< 320 * 200 {
            let c = pixel(k % 320, k / 320)
            if c == [0, 0, 0] { black += 1 }
            if c[2] > 150 && c[0] < 170 && c[2] > c[0] + 40 { blue += 1 }
        }
        XCTAssertGreaterThan(black, 500, "axes, ticks and labels")
        XCTAssertGreaterThan(blue, 200, "the loss curve")
        // Left of the plot the curve is high (large loss early), on the right it is low: find the curve's rows.
        func curveRow(atColumn x: Int) -> Int? { (0 ..< 200).first { pixel(x, $0) == [20, 70, 160] } }
        let early = try XCTUnwrap((40 ..< 80).lazy.compactMap(curveRow).first)
        let late = try XCTUnwrap((260 ..< 300).lazy.compactMap(curveRow).first)
        XCTAssertLessThan(early, late, "the early loss is drawn higher up")
        XCTAssertNoThrow(try PNG.encode(pixels: p.rgb, width: 320, height: 200, channels: 3))
        // Degenerate inputs still give a valid image.
        XCTAssertEqual(LossPlot.render(steps: [], losses: [], width: 100, height: 80).rgb.count, 100 * 80 * 3)
        XCTAssertEqual(LossPlot.render(steps: [3], losses: [.nan], width: 100, height: 80).rgb.count, 100 * 80 * 3)
    }
}
