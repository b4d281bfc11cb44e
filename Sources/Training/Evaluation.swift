// How closely generated images follow their edge hints, as one Codable report with the floors and the ceiling
// beside our figure: the base model alone (control scale 0), real images of the same label by another writer, and
// the real images the hints came from. `eval`, the quickstart and the validation previews all use it.
import Foundation
import Datasets
import Distributed
import Model

/// Edge precision, recall and F1 of Canny(image) against the hint at 0 and 1 pixel of tolerance.
public struct EdgeScores: Codable, Sendable, Equatable {
    public struct Figures: Codable, Sendable, Equatable {
        public var precision: Double, recall: Double, f1: Double
        init(_ s: EdgeScore) { precision = s.precision; recall = s.recall; f1 = s.f1 }
    }
    public var exact: Figures
    public var onePixel: Figures
    /// Edge pixels Canny finds in the images per edge pixel of the hints: about 1 when the images draw as much edge
    /// as the hints ask for (far above: clutter; far below: missing strokes).
    public var edgePixelsPerHintPixel: Double
    enum CodingKeys: String, CodingKey {
        case exact, onePixel = "one_pixel", edgePixelsPerHintPixel = "edge_pixels_per_hint_pixel"
    }

    /// Scores of images (N, 1, H, W) in [-1, 1] against hints (N, 1, H, W) in [0, 1].
    public init(images: [Float], hints: [Float], count: Int, height: Int, width: Int) {
        let s = EdgeMetrics.evaluate(images: images, hints: hints, count: count, height: height, width: width)
        exact = Figures(s.exact); onePixel = Figures(s.onePixel)
        edgePixelsPerHintPixel = s.exact.hint == 0 ? 0 : Double(s.exact.predicted) / Double(s.exact.hint)
    }
}

/// An evaluation's report as `eval --json` writes it: sorted keys, non-finite values as strings.
public protocol EvaluationReport: Codable, Sendable {}

extension EvaluationReport {
    public var json: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? encoder.encode(self)) ?? Data("{}".utf8)
    }
}

/// What `eval` prints for edges: the run's settings, our scores, the floors and the ceiling.
public struct EdgeEvaluationReport: EvaluationReport {
    public var count: Int
    public var data: String
    public var sampler: String, steps: Int, seed: UInt64
    public var controls: [String], base: String
    /// Ours: the ControlNet-guided samples.
    public var controlled: EdgeScores
    /// Floors: the base model's samples for the same seeds (scale 0), and a real image of the same label by
    /// another writer (the floor that matters: "a digit of the right class" without following the hint).
    public var baseScale0Floor: EdgeScores?
    public var sameDigitOtherWriter: EdgeScores?
    /// Ceiling: the real images the hints were computed from.
    public var realImagesCeiling: EdgeScores
    public var samplingSeconds: Double

    enum CodingKeys: String, CodingKey {
        case count, data, sampler, steps, seed, controls, base, controlled
        case baseScale0Floor = "base_scale_0_floor", sameDigitOtherWriter = "same_digit_other_writer"
        case realImagesCeiling = "real_images_ceiling", samplingSeconds = "sampling_seconds"
    }
}

public enum EdgeEvaluation {
    /// What one evaluation produced: the report and the images it scored.
    public struct Outcome {
        public var report: EdgeEvaluationReport
        public var samples: [Float]
        public var baseSamples: [Float]?
    }

    /// Samples every hint of `hints` with `generator` (and, unless `skipBaseFloor`, again at control scale 0, which
    /// skips every ControlNet: exactly the base model's samples for the same seeds) and scores them. With `comm`
    /// the sampling is shared by its ranks (a collective), and every rank gets the whole outcome.
    public static func run(generator: Generator, hints set: HintSet, settings: GenerationSettings, data: String,
                           controls: [String], base: String, skipBaseFloor: Bool, comm: (any Communicator)? = nil,
                           progress: ((String, Int, Int) -> Void)? = nil) throws -> Outcome {
        let config = generator.config, S = config.imageSize
        let labels = (try? generator.labels(for: set)) ?? nil
        func score(_ images: [Float]) -> EdgeScores {
            EdgeScores(images: images, hints: set.hints, count: set.count, height: S, width: S)
        }
        func sample(_ what: String) throws -> [Float] {
            try generator.generate(count: set.count, hints: set.hints, labels: labels, settings: settings,
                                   comm: comm ?? LocalCommunicator()) { progress?(what, $0, $1) }
        }
        let started = Date()
        let samples = try sample("controlled samples")
        let seconds = Date().timeIntervalSince(started)
        var baseSamples: [Float]?
        if !skipBaseFloor {
            let saved = generator.controls
            generator.controls = saved.map { var c = $0; c.scale = 0; return c }
            defer { generator.controls = saved }
            baseSamples = try sample("base (scale 0) samples")
        }
        let report = EdgeEvaluationReport(
            count: set.count, data: data, sampler: settings.sampler.kind.rawValue, steps: settings.sampler.steps,
            seed: settings.sampler.seed, controls: controls, base: base, controlled: score(samples),
            baseScale0Floor: baseSamples.map(score), sameDigitOtherWriter: set.sameLabelOthers.map(score),
            realImagesCeiling: score(set.images), samplingSeconds: seconds)
        return Outcome(report: report, samples: samples, baseSamples: baseSamples)
    }
}
