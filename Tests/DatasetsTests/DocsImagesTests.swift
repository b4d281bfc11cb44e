// Renders the documentation images from real data - MNIST-5k test digits beside their Canny hints, every hint kind
// on a few digits, and an example loss plot - and checks that the committed docs/*.png are exactly what the code
// renders today: a change to Canny, a hint kind, the grid or the plot shows up here. With DATASETS_DOCS_DIR set
// (e.g. DATASETS_DOCS_DIR=$PWD/docs) the images are written there instead, to update the docs.
import Datasets
import Foundation
import XCTest
import Randomness

final class DocsImagesTests: XCTestCase {
    /// The repository's docs directory (this file is Tests/DatasetsTests/DocsImagesTests.swift).
    private let docsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs")

    /// Writes the image (a PNG round trip in a scratch directory), then either updates docs/ (DATASETS_DOCS_DIR) or
    /// compares the committed docs/<name> pixel for pixel.
    private func check(pixels: [UInt8], channels: Int, width: Int, height: Int, name: String) throws {
        let scratch = try makeScratchDirectory(self).appendingPathComponent(name)
        if channels == 1 { try PNG.write(gray: pixels, width: width, height: height, to: scratch) }
        else { try PNG.write(rgb: pixels, width: width, height: height, to: scratch) }
        XCTAssertEqual(try PNG.decode([UInt8](Data(contentsOf: scratch))).pixels, pixels, "PNG round trip of \(name)")
        if let docs = ProcessInfo.processInfo.environment["DATASETS_DOCS_DIR"] {
            try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: docs + "/" + name)
            try FileManager.default.copyItem(at: scratch, to: URL(fileURLWithPath: docs).appendingPathComponent(name))
            return
        }
        let committed = try PNG.decode([UInt8](Data(contentsOf: docsDirectory.appendingPathComponent(name))))
        XCTAssertEqual(committed.width, width, name); XCTAssertEqual(committed.height, height, name)
        XCTAssertTrue(committed.pixels == pixels, "docs/\(name) is no longer what the code renders: if the change is "
                      + "intended, regenerate it with DATASETS_DOCS_DIR=$PWD/docs swift test --filter DocsImagesTests")
    }

    /// MNIST-5k as stored in the fixtures (file order: 500 rows per digit 0...9); indices of test-split digits.
    private func mnistTestDigits(perDigit: Int) throws -> ImageDataset {
        let idx = try IDX.readImages(Fixtures.url("canny/mnist5k-images-idx3-ubyte.gz"))
        let all = ImageDataset(name: "mnist5k", count: idx.count, channels: 1, height: 28, width: 28,
                               pixels: idx.pixels, labels: nil)
        let indices = (0 ..< perDigit).flatMap { k in (0 ..< 10).map { d in d * 500 + 400 + k * 7 } }
        return all.subset(indices, name: "mnist5k-docs")
    }

    private func save(gray: [UInt8], width: Int, height: Int, name: String) throws {
        try check(pixels: gray, channels: 1, width: width, height: height, name: name)
    }

    func testMNISTCannyGrid() throws {
        let d = try mnistTestDigits(perDigit: 4)
        let provider = HintProvider(dataset: d, kind: .canny)
        var hints = [Float](repeating: 0, count: d.count * 784), images = hints
        for i in 0 ..< d.count {
            hints.withUnsafeMutableBufferPointer { provider.hint(i, seed: 0, into: $0.baseAddress! + i * 784) }
            images.withUnsafeMutableBufferPointer { d.image(i, into: $0.baseAddress! + i * 784) }
        }
        let grid = ImageGrid.pairs(hints: hints, images: images, count: d.count, height: 28, width: 28, columns: 10)
        let big = ImageGrid.upscale(grid.pixels, width: grid.width, height: grid.height, factor: 2)
        try save(gray: big.pixels, width: big.width, height: big.height, name: "mnist-canny-grid.png")
    }

    func testAllHintKindsGrid() throws {
        let d = try mnistTestDigits(perDigit: 1)
        // One cell per digit: the image, then each hint kind in HintKind.allCases order.
        var panels: [(values: [Float], range: ClosedRange<Float>)] = []
        var images = [Float](repeating: 0, count: d.count * 784)
        for i in 0 ..< d.count { images.withUnsafeMutableBufferPointer { d.image(i, into: $0.baseAddress! + i * 784) } }
        panels.append((images, -1 ... 1))
        for kind in HintKind.allCases {
            let provider = HintProvider(dataset: d, kind: kind)
            var hints = [Float](repeating: 0, count: d.count * 784)
            for i in 0 ..< d.count { hints.withUnsafeMutableBufferPointer { provider.hint(i, seed: 1, into: $0.baseAddress! + i * 784) } }
            panels.append((hints, 0 ... 1))
        }
        let grid = ImageGrid.groups(panels, count: d.count, height: 28, width: 28, columns: 2)
        let big = ImageGrid.upscale(grid.pixels, width: grid.width, height: grid.height, factor: 2)
        try save(gray: big.pixels, width: big.width, height: big.height, name: "mnist-hint-kinds.png")
    }

    func testExampleLossPlot() throws {
        // A synthetic, deterministic curve (decay plus pseudo-random noise): it shows the renderer, not a real run.
        var rng = SplitMix64(seed: 5)
        let steps = Array(stride(from: 0, through: 20000, by: 20))
        let losses = steps.map { s in
            0.035 + 0.25 * exp(-Double(s) / 2500) + 0.03 * (Double(rng.next() >> 11) / Double(1 << 53) - 0.5)
        }
        let plot = LossPlot.render(steps: steps, losses: losses, width: 640, height: 400)
        try check(pixels: plot.rgb, channels: 3, width: plot.width, height: plot.height, name: "loss-plot-example.png")
    }
}
