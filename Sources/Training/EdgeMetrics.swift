// How well generated images follow their edge hints: Canny(generated) against the hint, as precision, recall and F1
// at a pixel tolerance (0 = exact pixels; 1 = a match anywhere in the 3x3 neighbourhood). Counts are summed over all
// images before the ratios are taken (micro-averaged), so empty edge maps do not skew the result.
import Foundation
import Datasets

public struct EdgeScore: Codable, Sendable {
    public var truePositivesPredicted = 0   // predicted edge pixels with a hint pixel within tolerance
    public var predicted = 0
    public var truePositivesHint = 0        // hint edge pixels with a predicted pixel within tolerance
    public var hint = 0
    public var precision: Double { predicted == 0 ? 0 : Double(truePositivesPredicted) / Double(predicted) }
    public var recall: Double { hint == 0 ? 0 : Double(truePositivesHint) / Double(hint) }
    public var f1: Double { precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall) }

    public mutating func add(_ o: EdgeScore) {
        truePositivesPredicted += o.truePositivesPredicted; predicted += o.predicted
        truePositivesHint += o.truePositivesHint; hint += o.hint
    }

    public var summary: [String: Double] { ["precision": precision, "recall": recall, "f1": f1] }
}

public enum EdgeMetrics {
    /// predicted, hint: (H, W) edge maps, non-zero = edge.
    public static func score(predicted: [UInt8], hint: [UInt8], height: Int, width: Int, tolerance: Int) -> EdgeScore {
        func near(_ map: [UInt8], _ y: Int, _ x: Int) -> Bool {
            for dy in -tolerance...tolerance {
                let yy = y + dy
                if yy < 0 || yy >= height { continue }
                for dx in -tolerance...tolerance {
                    let xx = x + dx
                    if xx >= 0 && xx < width && map[yy * width + xx] != 0 { return true }
                }
            }
            return false
        }
        var s = EdgeScore()
        for y in 0..<height {
            for x in 0..<width {
                if predicted[y * width + x] != 0 {
                    s.predicted += 1
                    if near(hint, y, x) { s.truePositivesPredicted += 1 }
                }
                if hint[y * width + x] != 0 {
                    s.hint += 1
                    if near(predicted, y, x) { s.truePositivesHint += 1 }
                }
            }
        }
        return s
    }

    /// An image in [-1, 1] (H, W) as uint8, as it would be saved.
    public static func toBytes(_ image: ArraySlice<Float>) -> [UInt8] {
        image.map { UInt8(max(0, min(255, (($0 + 1) * 127.5).rounded()))) }
    }

    /// Canny(100, 200) of a [-1, 1] image (H, W).
    public static func cannyOfImage(_ image: ArraySlice<Float>, height: Int, width: Int) -> [UInt8] {
        let bytes = toBytes(image)
        var edges = [UInt8](repeating: 0, count: height * width)
        bytes.withUnsafeBufferPointer { src in
            edges.withUnsafeMutableBufferPointer { dst in
                Canny.edges(src.baseAddress!, height: height, width: width, low: Canny.defaultLow,
                            high: Canny.defaultHigh, into: dst.baseAddress!)
            }
        }
        return edges
    }

    /// Scores of images (N, 1, H, W) in [-1, 1] against hint maps (N, 1, H, W) in [0, 1] at tolerances 0 and 1.
    public static func evaluate(images: [Float], hints: [Float], count: Int, height: Int, width: Int) -> (exact: EdgeScore, onePixel: EdgeScore) {
        let per = height * width
        var exact = EdgeScore(), one = EdgeScore()
        for i in 0..<count {
            let predicted = cannyOfImage(images[(i * per)..<((i + 1) * per)], height: height, width: width)
            let hint = hints[(i * per)..<((i + 1) * per)].map { $0 > 0.5 ? UInt8(255) : 0 }
            exact.add(score(predicted: predicted, hint: hint, height: height, width: width, tolerance: 0))
            one.add(score(predicted: predicted, hint: hint, height: height, width: width, tolerance: 1))
        }
        return (exact, one)
    }
}
