// Canny on hand-built images where OpenCV's rules decide the answer: the asymmetric NMS tie rule (the first of two
// equal maxima wins), thresholds floored and compared with '>', swapped thresholds, hysteresis, random thresholds.
import Datasets
import XCTest

final class CannyTests: XCTestCase {
    private func canny(_ image: [UInt8], _ h: Int, _ w: Int, _ low: Double, _ high: Double) -> [UInt8] {
        var out = [UInt8](repeating: 7, count: h * w)
        Canny.edges(image, height: h, width: w, low: low, high: high, into: &out)
        return out
    }

    /// 8x8, columns < 4 are 0 and the rest `v`: Sobel dx is 4v at columns 3 and 4 (a tie).
    private func verticalStep(_ v: UInt8) -> [UInt8] {
        (0 ..< 64).map { $0 % 8 < 4 ? 0 : v }
    }

    func testTiesKeepTheFirstMaximum() {
        let e = canny(verticalStep(255), 8, 8, 100, 200)
        for i in 0 ..< 8 {
            XCTAssertEqual(Array(e[i * 8 ..< i * 8 + 8]), [0, 0, 0, 255, 0, 0, 0, 0], "row \(i)")
        }
        // Transposed: a horizontal step marks row 3 only.
        let t = (0 ..< 64).map { verticalStep(255)[($0 % 8) * 8 + $0 / 8] }
        let et = canny(t, 8, 8, 100, 200)
        for i in 0 ..< 8 { XCTAssertEqual(Set(et[i * 8 ..< i * 8 + 8]), [i == 3 ? 255 : 0], "row \(i)") }
    }

    func testThresholdsAreFlooredAndStrict() {
        // v = 50 gives magnitude exactly 200 along the step.
        XCTAssertEqual(canny(verticalStep(50), 8, 8, 100, 200).filter { $0 != 0 }.count, 0, "200 > 200 fails")
        XCTAssertEqual(canny(verticalStep(50), 8, 8, 100, 200.9).filter { $0 != 0 }.count, 0, "floor(200.9) = 200")
        XCTAssertEqual(canny(verticalStep(50), 8, 8, 100, 199.99).filter { $0 != 0 }.count, 8, "floor(199.99) = 199")
        XCTAssertEqual(canny(verticalStep(50), 8, 8, 200, 150), canny(verticalStep(50), 8, 8, 150, 200), "swapped")
        XCTAssertEqual(canny(verticalStep(50), 8, 8, 199.5, 150).filter { $0 != 0 }.count, 8, "swapped, then floored")
    }

    func testOutputIsBinaryAndFlatImagesHaveNoEdges() {
        XCTAssertEqual(Set(canny([UInt8](repeating: 77, count: 30), 5, 6, 1, 2)), [0])
        let noisy = (0 ..< 400).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
        XCTAssertTrue(Set(canny(noisy, 20, 20, 100, 200)).isSubset(of: [0, 255]))
    }

    func testHysteresisFollowsWeakEdgesOnlyFromStrongOnes() {
        // 16x16: left half 0; right half 40 (magnitude 160: weak for 100/200) except rows 0-3, which are 100 (strong).
        let h = 16, w = 16
        func image(strongTop: Bool) -> [UInt8] {
            (0 ..< h * w).map { k in k % w < 8 ? 0 : (strongTop && k / w < 4 ? 100 : 40) }
        }
        let withStrong = canny(image(strongTop: true), h, w, 100, 200)
        for i in 6 ..< h { XCTAssertEqual(withStrong[i * w + 7], 255, "weak row \(i) joined through the strong part") }
        XCTAssertEqual(canny(image(strongTop: false), h, w, 100, 200).filter { $0 != 0 }.count, 0, "weak alone")
        XCTAssertEqual(canny(image(strongTop: false), h, w, 100, 159).filter { $0 != 0 }.count, h, "all strong")
    }

    func testRandomThresholdsArePureAndInRange() {
        var lows = Set<Double>()
        for i in 0 ..< 500 {
            let t = Canny.randomThresholds(seed: 42, index: i)
            XCTAssertEqual(t.low, Canny.randomThresholds(seed: 42, index: i).low)
            XCTAssertEqual(t.high, Canny.randomThresholds(seed: 42, index: i).high)
            XCTAssertTrue(Canny.randomLowRange.contains(Int(t.low)) && Canny.randomHighRange.contains(Int(t.high)))
            XCTAssertEqual(t.low, t.low.rounded())
            lows.insert(t.low)
        }
        XCTAssertGreaterThan(lows.count, 80, "thresholds should spread over the range")
        let differs = (0 ..< 50).contains { Canny.randomThresholds(seed: 1, index: $0).low != Canny.randomThresholds(seed: 2, index: $0).low }
        XCTAssertTrue(differs, "the seed must matter")
    }
}
