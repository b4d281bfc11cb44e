// Resizing and channel conversion: bilinear against Pillow's Image.resize(BILINEAR) + torchvision's centre crop
// (fixtures by scripts/fixtures/make_image_fixtures.py), luma against Pillow's convert("L"), the exact area filter,
// torchvision's size and crop arithmetic, alpha compositing.
import Randomness
import Datasets
import Foundation
import XCTest

final class ImageResizeTests: XCTestCase {
    func testBilinearMatchesPillowByteForByte() throws {
        let fixtures = try ImageFixtures()
        let cases = try XCTUnwrap(fixtures.json["_resize_cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 16)
        for c in cases {
            let input = try ImageFixtures.read(try XCTUnwrap(c["input"] as? String))
            let size = try XCTUnwrap(c["size"] as? Int)
            let expected = try ImageFixtures.read(try XCTUnwrap(c["expected"] as? String))
            let channels = input.channels
            let resized = try XCTUnwrap(c["resized"] as? [Int]), crop = try XCTUnwrap(c["crop"] as? [Int])
            let label = "\(c["input"]!) -> \(size)"
            let (h, w) = ImageResize.shortSideSize(height: input.height, width: input.width, to: size)
            XCTAssertEqual([h, w], resized, label)
            XCTAssertEqual([ImageResize.centerCropOffset(h, size), ImageResize.centerCropOffset(w, size)], crop, label)
            let out = ImageResize.resizeShortSideAndCenterCrop(
                try input.planar(channels: channels), channels: channels, height: input.height, width: input.width,
                size: size, filter: .bilinear)
            XCTAssertEqual(out, try expected.planar(channels: channels), label)
            // The interleaved path PairedDataset uses (all channels of a pixel in one loop) gives the same bytes.
            XCTAssertEqual(try input.resizedPlanes(channels: channels, size: size, filter: .bilinear), out, label)
        }
    }

    func testInterleavedAndPlanarPathsAgreeForEveryConversion() throws {
        var rng = SplitMix64(seed: 21)
        for (channels, w, h) in [(1, 40, 23), (2, 17, 33), (3, 50, 31), (4, 29, 64)] {
            let pixels = (0 ..< w * h * channels).map { _ in UInt8(rng.next(below: 256)) }
            let image = DecodedImage(width: w, height: h, channels: channels, pixels: pixels)
            for out in [1, 3] {
                for filter in ResizeFilter.allCases {
                    for size in [8, 16, 45] {
                        let planar = ImageResize.resizeShortSideAndCenterCrop(
                            try image.planar(channels: out), channels: out, height: h, width: w, size: size,
                            filter: filter)
                        XCTAssertEqual(try image.resizedPlanes(channels: out, size: size, filter: filter), planar,
                                       "\(channels) -> \(out) channels, \(filter) to \(size)")
                    }
                }
            }
        }
    }

    func testLumaMatchesPillowConvertL() throws {
        for name in ["resize-rgb-50x37", "resize-rgb-30x45", "resize-rgb-120x90"] {
            let rgb = try ImageFixtures.read(name + ".png"), pillow = try ImageFixtures.read(name + ".L.png")
            XCTAssertEqual(try rgb.planar(channels: 1), pillow.pixels, name)
        }
        // The rule itself, at the values where rounding matters.
        XCTAssertEqual(luma(255, 255, 255), 255)
        XCTAssertEqual(luma(255, 0, 0), 76)  // 76.245
        XCTAssertEqual(luma(0, 255, 0), 150)  // 149.685
        XCTAssertEqual(luma(0, 0, 255), 29)  // 29.07
        XCTAssertEqual(luma(1, 1, 1), 1)
    }

    func testChannelConversionsCompositeAlphaOnBlack() throws {
        // One RGBA pixel and one gray + alpha pixel.
        let rgba = DecodedImage(width: 2, height: 1, channels: 4, pixels: [200, 100, 50, 128, 10, 20, 30, 255])
        XCTAssertEqual(try rgba.planar(channels: 3), [100, 10, 50, 20, 25, 30], "(c * a + 127) / 255, planar")
        XCTAssertEqual(try rgba.planar(channels: 1), [luma(100, 50, 25), luma(10, 20, 30)])
        let ga = DecodedImage(width: 1, height: 1, channels: 2, pixels: [255, 0])
        XCTAssertEqual(try ga.planar(channels: 3), [0, 0, 0], "fully transparent is black")
        let gray = DecodedImage(width: 2, height: 1, channels: 1, pixels: [7, 9])
        XCTAssertEqual(try gray.planar(channels: 3), [7, 9, 7, 9, 7, 9], "gray replicates")
        assertImageError(try gray.planar(channels: 2), mentions: ["channels", "1 (gray) or 3 (RGB)"])
    }

    func testAreaIsTheExactMeanForIntegerFactors() {
        // 6x4 -> 3x2: each output is the mean of a 2x2 block, rounded half up.
        let plane: [UInt8] = [0, 1, 10, 10, 255, 255,
                              0, 0, 10, 11, 255, 254,
                              3, 3, 100, 200, 0, 0,
                              3, 4, 0, 0, 0, 1]
        let out = ImageResize.resize(plane, channels: 1, height: 4, width: 6, toHeight: 2, toWidth: 3,
                                     rows: 0 ..< 2, columns: 0 ..< 3, filter: .area)
        XCTAssertEqual(out, [0, 10, 255, 3, 75, 0], "block sums 1, 41, 1019, 13, 300, 1 over 4")
        // A 3x downscale of a random image equals the block means computed here.
        var rng = SplitMix64(seed: 3)
        let big = (0 ..< 2 * 9 * 12).map { _ in UInt8(rng.next(below: 256)) }
        let small = ImageResize.resize(big, channels: 2, height: 9, width: 12, toHeight: 3, toWidth: 4,
                                       rows: 0 ..< 3, columns: 0 ..< 4, filter: .area)
        for c in 0 ..< 2 {
            for y in 0 ..< 3 {
                for x in 0 ..< 4 {
                    var s = 0
                    for dy in 0 ..< 3 { for dx in 0 ..< 3 { s += Int(big[(c * 9 + 3 * y + dy) * 12 + 3 * x + dx]) } }
                    XCTAssertEqual(Int(small[(c * 3 + y) * 4 + x]), (s + 4) / 9)
                }
            }
        }
    }

    func testAreaUsesFractionalCoverage() {
        // 3 -> 2 pixels: output 0 covers input [0, 1.5) = 1 x p0 + 0.5 x p1, over 1.5.
        let out = ImageResize.resize([0, 90, 180], channels: 1, height: 1, width: 3, toHeight: 1, toWidth: 2,
                                     rows: 0 ..< 1, columns: 0 ..< 2, filter: .area)
        XCTAssertEqual(out, [30, 150])
        // 2 -> 4 upscaling: each output lies inside one input pixel.
        let up = ImageResize.resize([10, 200], channels: 1, height: 1, width: 2, toHeight: 1, toWidth: 4,
                                    rows: 0 ..< 1, columns: 0 ..< 4, filter: .area)
        XCTAssertEqual(up, [10, 10, 200, 200])
        // A constant image stays constant at any size, both filters.
        for filter in ResizeFilter.allCases {
            let flat = [UInt8](repeating: 77, count: 3 * 23 * 31)
            let r = ImageResize.resizeShortSideAndCenterCrop(flat, channels: 3, height: 23, width: 31, size: 10,
                                                             filter: filter)
            XCTAssertEqual(r, [UInt8](repeating: 77, count: 300), filter.rawValue)
        }
    }

    func testTorchvisionSizeAndCropArithmetic() {
        XCTAssertTrue(ImageResize.shortSideSize(height: 512, width: 768, to: 256) == (256, 384))
        XCTAssertTrue(ImageResize.shortSideSize(height: 61, width: 23, to: 16) == (42, 16), "int(16 * 61 / 23) = 42")
        XCTAssertTrue(ImageResize.shortSideSize(height: 100, width: 100, to: 7) == (7, 7))
        // Python's round() rounds half to even: (9 - 8) / 2 = 0.5 -> 0, (11 - 8) / 2 = 1.5 -> 2.
        XCTAssertEqual(ImageResize.centerCropOffset(9, 8), 0)
        XCTAssertEqual(ImageResize.centerCropOffset(11, 8), 2)
        XCTAssertEqual(ImageResize.centerCropOffset(13, 8), 2)
        XCTAssertEqual(ImageResize.centerCropOffset(8, 8), 0)
    }
}
