// Hint kinds (each a pure function image -> hint) and the provider's caching: deterministic kinds are computed once
// (in memory, optionally on disk), random-threshold Canny on the fly as a pure function of (seed, index).
import Datasets
import Foundation
import XCTest

final class HintTests: XCTestCase {
    /// A 12x12 "digit": a filled 6x4 rectangle of 200 on 0, plus a few bright pixels, in 5 shifted copies.
    private func dataset() -> ImageDataset {
        var pixels: [UInt8] = []
        for n in 0 ..< 5 {
            var img = [UInt8](repeating: 0, count: 144)
            for i in 3 ..< 9 { for j in (2 + n % 3) ..< (6 + n % 3) { img[i * 12 + j] = 200 } }
            img[11 * 12 + 11] = UInt8(50 * n)
            pixels += img
        }
        return ImageDataset(name: "toy", count: 5, channels: 1, height: 12, width: 12, pixels: pixels,
                            labels: [0, 1, 2, 3, 4])
    }

    private func hint(_ kind: HintKind, _ image: [UInt8], _ h: Int, _ w: Int, seed: UInt64 = 0, index: Int = 0) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: h * w)
        Hints.compute(kind, image: image, height: h, width: w, seed: seed, index: index, into: &out)
        return out
    }

    func testEveryKindHasANameAndAHint() {
        XCTAssertEqual(HintKind(rawValue: "canny-random"), .cannyRandom)
        XCTAssertEqual(HintKind.allCases.filter { !$0.isDeterministic }, [.cannyRandom])
        XCTAssertGreaterThanOrEqual(HintKind.allCases.count, 6)
        let img = Array(dataset().rawImage(0))
        for kind in HintKind.allCases {
            let a = hint(kind, img, 12, 12, seed: 3, index: 1)
            XCTAssertEqual(a, hint(kind, img, 12, 12, seed: 3, index: 1), "\(kind) is a pure function")
            XCTAssertTrue(a.contains { $0 != 0 }, "\(kind) hint of a digit is not empty")
        }
    }

    func testMaskSobelTileBlurValues() {
        let img = Array(dataset().rawImage(0))  // rectangle rows 3..<9, cols 2..<6
        let mask = hint(.mask, img, 12, 12)
        XCTAssertEqual(mask.filter { $0 == 255 }.count, 24)
        XCTAssertEqual(mask[3 * 12 + 2], 255)
        XCTAssertEqual(mask[0], 0)

        let sobel = hint(.sobel, img, 12, 12)
        XCTAssertEqual(sobel[6 * 12 + 4], 0, "inside the flat rectangle")
        XCTAssertEqual(sobel[6 * 12 + 1], 200, "left of the rectangle dx = 4*200 = 800, dy = 0: 800/1020*255 = 200")
        XCTAssertEqual(sobel[3 * 12 + 1], UInt8((Double(600 * 600 + 200 * 200).squareRoot() * 255 / 1020).rounded()),
                       "at the top corner dx = 600 and dy = 200")
        XCTAssertEqual(sobel[0], 0)

        let tile = hint(.tile, img, 12, 12)
        // The tile at rows 4..<8, cols 4..<8 holds 4 rows x 2 columns (4, 5) of 200: mean 100.
        XCTAssertEqual(tile[4 * 12 + 4], UInt8((8 * 200 + 8) / 16))
        XCTAssertEqual(Set(tile[4 * 12 + 4 ..< 4 * 12 + 8]), [tile[4 * 12 + 4]])

        let blur = hint(.blur, [UInt8](repeating: 90, count: 20), 4, 5)
        XCTAssertEqual(blur, [UInt8](repeating: 90, count: 20), "blur preserves flat images exactly")
        XCTAssertGreaterThan(hint(.blur, img, 12, 12)[2 * 12 + 4], 0, "blur spreads ink outward")
    }

    func testScribbleIsAThickenedSkeleton() {
        // A 9-pixel-thick horizontal bar thins to (about) a line and is dilated to a 3-pixel-thick stroke.
        let h = 21, w = 30
        let img = (0 ..< h * w).map { k -> UInt8 in (6 ..< 15).contains(k / w) && (3 ..< 27).contains(k % w) ? 255 : 0 }
        let s = hint(.scribble, img, h, w)
        let column = (0 ..< h).map { s[$0 * w + 15] }
        XCTAssertEqual(column.filter { $0 == 255 }.count, 3, "stroke width 3 in the middle of the bar")
        XCTAssertEqual(column[10], 255, "centred on the bar's middle row")
        XCTAssertLessThan(s.filter { $0 == 255 }.count, img.filter { $0 == 255 }.count / 2)
        XCTAssertEqual(hint(.scribble, [UInt8](repeating: 0, count: 25), 5, 5), [UInt8](repeating: 0, count: 25))
    }

    func testProviderCachesDeterministicKinds() throws {
        let d = dataset()
        for kind in HintKind.allCases where kind.isDeterministic {
            let provider = HintProvider(dataset: d, kind: kind)
            for i in 0 ..< d.count {
                let direct = hint(kind, Array(d.rawImage(i)), 12, 12)
                XCTAssertEqual(provider.hintBytes(i, seed: 0), direct, "\(kind) sample \(i)")
                XCTAssertEqual(provider.hintBytes(i, seed: 99), direct, "deterministic kinds ignore the seed")
                var f = [Float](repeating: -1, count: 144)
                provider.hint(i, seed: 5, into: &f)
                XCTAssertEqual(f, direct.map { Float($0) / 255 })
            }
        }
    }

    func testRandomCannyIsAPureFunctionOfSeedAndIndex() {
        // A ramp so the thresholds matter: magnitudes spread over 0...~300.
        let h = 16, w = 16
        let pixels = (0 ..< 3).flatMap { n in (0 ..< h * w).map { k in UInt8(min(255, (k % w) * (k % w) * (n + 1))) } }
        let d = ImageDataset(name: "ramps", count: 3, channels: 1, height: h, width: w, pixels: pixels, labels: nil)
        let a = HintProvider(dataset: d, kind: .cannyRandom), b = HintProvider(dataset: d, kind: .cannyRandom)
        var seen = Set<[UInt8]>()
        for seed: UInt64 in 0 ..< 40 {
            for i in 0 ..< 3 {
                let x = a.hintBytes(i, seed: seed)
                XCTAssertEqual(x, b.hintBytes(i, seed: seed), "same (seed, i) -> same hint on another provider/rank")
                let t = Canny.randomThresholds(seed: seed, index: i)
                var expected = [UInt8](repeating: 0, count: h * w)
                Canny.edges(Array(d.rawImage(i)), height: h, width: w, low: t.low, high: t.high, into: &expected)
                XCTAssertEqual(x, expected)
                if i == 0 { seen.insert(x) }
            }
        }
        XCTAssertGreaterThan(seen.count, 1, "different seeds give different edges")
    }

    func testDiskCacheIsWrittenReusedAndChecked() throws {
        let dir = try makeScratchDirectory(self)
        let d = dataset()
        let first = try HintProvider(dataset: d, kind: .scribble, cacheDirectory: dir)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(files.count, 1)
        let second = try HintProvider(dataset: d, kind: .scribble, cacheDirectory: dir)
        for i in 0 ..< d.count { XCTAssertEqual(first.hintBytes(i, seed: 0), second.hintBytes(i, seed: 0)) }
        // Corrupt the cache: the provider must refuse it with a message naming the file.
        let url = dir.appendingPathComponent(files[0])
        try Data([1, 2, 3]).write(to: url)
        assertDatasetError(try HintProvider(dataset: d, kind: .scribble, cacheDirectory: dir), mentions: [url.path, "Delete"])
        // Random kinds are never cached.
        _ = try HintProvider(dataset: d, kind: .cannyRandom, cacheDirectory: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).count, 1)
    }
}
