// How well generated images follow the fill-circles task (the ControlNet tutorial's): each sample's hint is a
// circle's outline and its prompt "<fill> circle with <background> background". Three measures:
// - circle IoU: the generated image segmented against the prompt's background colour (a pixel whose nearest
//   palette colour is not the background is "circle"), against the hint's disc (every pixel the outline encloses,
//   outline included). Summed over the samples before the ratio (micro-averaged), as the edge F1 is;
// - fill-colour accuracy: the nearest palette colour to the mean colour inside the disc is the prompt's fill;
// - background-colour accuracy: the same outside the disc, against the prompt's background.
// Floors: the base model alone (control scale 0), and the right prompts with shuffled hints; ceiling: the real
// targets.
import Foundation
import Datasets
import Distributed
import Model

public struct FillScores: Codable, Sendable, Equatable {
    public var count: Int
    public var circleIoU: Double
    public var fillAccuracy: Double
    public var backgroundAccuracy: Double
    enum CodingKeys: String, CodingKey {
        case count, circleIoU = "circle_iou", fillAccuracy = "fill_accuracy", backgroundAccuracy = "background_accuracy"
    }
}

public enum FillMetrics {
    /// The prompt's (fill, background) palette indices, or nil when it is not a fill-circles prompt.
    public static func colours(of prompt: String) -> (fill: Int, background: Int)? {
        let words = prompt.split(separator: " ")
        guard words.count == 5, words[1] == "circle", words[2] == "with", words[4] == "background",
              let f = FillCircles.palette.firstIndex(where: { $0.name == words[0] }),
              let b = FillCircles.palette.firstIndex(where: { $0.name == words[3] }) else { return nil }
        return (f, b)
    }

    /// The disc an outline hint (Ch, S, S) in [0, 1] encloses: every pixel not reachable from the border through
    /// non-outline pixels (4-connected), outline included. (S * S)
    public static func disc(outline: UnsafePointer<Float>, size: Int) -> [Bool] {
        let n = size * size
        var outside = [Bool](repeating: false, count: n), stack: [Int] = []
        func push(_ k: Int) { if !outside[k] && outline[k] <= 0.5 { outside[k] = true; stack.append(k) } }
        for i in 0..<size { push(i); push((size - 1) * size + i); push(i * size); push(i * size + size - 1) }
        while let k = stack.popLast() {
            let y = k / size, x = k % size
            if y > 0 { push(k - size) }
            if y < size - 1 { push(k + size) }
            if x > 0 { push(k - 1) }
            if x < size - 1 { push(k + 1) }
        }
        return outside.map { !$0 }
    }

    /// Scores of RGB images (N, 3, S, S) in [-1, 1] against outline hints (N, Ch, S, S) and the prompts' colours.
    public static func score(images: [Float], hints: [Float], hintChannels: Int, colours: [(fill: Int, background: Int)],
                             size: Int) -> FillScores {
        let plane = size * size, n = colours.count
        var intersection = 0, union = 0, fillHits = 0, backgroundHits = 0
        images.withUnsafeBufferPointer { im in
            hints.withUnsafeBufferPointer { h in
                guard let ib = im.baseAddress, let hb = h.baseAddress else { return }
                for s in 0..<n {
                    let d = disc(outline: hb + s * hintChannels * plane, size: size)
                    let img = ib + s * 3 * plane
                    var sums = [[Double]](repeating: [0, 0, 0], count: 2), counts = [0, 0]
                    for k in 0..<plane {
                        let rgb = (0..<3).map { Double((img[$0 * plane + k] + 1) * 127.5) }
                        let nearest = FillCircles.nearestColor(r: rgb[0], g: rgb[1], b: rgb[2])
                        let predicted = nearest != colours[s].background
                        if predicted && d[k] { intersection += 1 }
                        if predicted || d[k] { union += 1 }
                        let region = d[k] ? 0 : 1
                        for c in 0..<3 { sums[region][c] += rgb[c] }
                        counts[region] += 1
                    }
                    func mean(_ r: Int) -> Int {
                        let c = max(1, counts[r])
                        return FillCircles.nearestColor(r: sums[r][0] / Double(c), g: sums[r][1] / Double(c), b: sums[r][2] / Double(c))
                    }
                    if counts[0] > 0 && mean(0) == colours[s].fill { fillHits += 1 }
                    if counts[1] > 0 && mean(1) == colours[s].background { backgroundHits += 1 }
                }
            }
        }
        return FillScores(count: n, circleIoU: union == 0 ? 0 : Double(intersection) / Double(union),
                          fillAccuracy: n == 0 ? 0 : Double(fillHits) / Double(n),
                          backgroundAccuracy: n == 0 ? 0 : Double(backgroundHits) / Double(n))
    }
}

/// What `eval --task fill` prints.
public struct FillEvaluationReport: EvaluationReport {
    public var count: Int
    public var data: String
    public var sampler: String, steps: Int, seed: UInt64, cfgScale: Float
    public var controls: [String], base: String
    public var controlled: FillScores
    public var baseScale0Floor: FillScores?
    public var shuffledHintsFloor: FillScores?
    public var realImagesCeiling: FillScores
    public var samplingSeconds: Double

    enum CodingKeys: String, CodingKey {
        case count, data, sampler, steps, seed, controls, base, controlled
        case cfgScale = "cfg_scale", baseScale0Floor = "base_scale_0_floor", shuffledHintsFloor = "shuffled_hints_floor"
        case realImagesCeiling = "real_images_ceiling", samplingSeconds = "sampling_seconds"
    }
}

public enum FillEvaluation {
    public struct Outcome {
        public var report: FillEvaluationReport
        public var samples: [Float]
        public var baseSamples: [Float]?
    }

    /// The fill colours of every held-out sample, from its prompt; an error names the first that is not a
    /// fill-circles prompt.
    public static func colours(of set: HintSet) throws -> [(fill: Int, background: Int)] {
        guard let v = set.vocabulary, let labels = set.labels else {
            throw OptionsError(option: "--data", message: "the fill-circles evaluation needs prompts; this data has none")
        }
        return try labels.enumerated().map { i, l in
            guard l >= 0, let c = FillMetrics.colours(of: v.prompts[l]) else {
                throw OptionsError(option: "--data", message: "sample \(set.indices[i]) has the prompt '\(l >= 0 ? v.prompts[l] : "")', not '<fill> circle with <background> background'")
            }
            return c
        }
    }

    /// With `comm` the sampling is shared by its ranks (a collective), and every rank gets the whole outcome.
    public static func run(generator: Generator, hints set: HintSet, settings: GenerationSettings, data: String,
                           controls: [String], base: String, skipFloors: Bool, comm: (any Communicator)? = nil,
                           progress: ((String, Int, Int) -> Void)? = nil) throws -> Outcome {
        let S = set.height
        let colours = try colours(of: set)
        let labels = try generator.labels(for: set)
        func score(_ images: [Float]) -> FillScores {
            FillMetrics.score(images: images, hints: set.hints, hintChannels: set.hintChannels, colours: colours, size: S)
        }
        func sample(_ what: String, hints: [Float]) throws -> [Float] {
            try generator.generate(count: set.count, hints: hints, labels: labels, settings: settings,
                                   comm: comm ?? LocalCommunicator()) { progress?(what, $0, $1) }
        }
        let started = Date()
        let samples = try sample("controlled samples", hints: set.hints)
        let seconds = Date().timeIntervalSince(started)
        var baseSamples: [Float]?, shuffled: [Float]?
        if !skipFloors {
            let saved = generator.controls
            generator.controls = saved.map { var c = $0; c.scale = 0; return c }
            baseSamples = try {
                defer { generator.controls = saved }
                return try sample("base (scale 0) samples", hints: set.hints)
            }()
            // The right prompt with another sample's hint: how much of the score the hint itself earns.
            let per = set.hintChannels * S * S
            var rolled = [Float](repeating: 0, count: set.hints.count)
            for i in 0..<set.count {
                let j = (i + 1) % set.count
                for k in 0..<per { rolled[i * per + k] = set.hints[j * per + k] }
            }
            shuffled = try sample("shuffled-hint samples", hints: rolled)
        }
        let report = FillEvaluationReport(
            count: set.count, data: data, sampler: settings.sampler.kind.rawValue, steps: settings.sampler.steps,
            seed: settings.sampler.seed, cfgScale: settings.cfgScale, controls: controls, base: base,
            controlled: score(samples), baseScale0Floor: baseSamples.map(score),
            shuffledHintsFloor: shuffled.map(score), realImagesCeiling: score(set.images), samplingSeconds: seconds)
        return Outcome(report: report, samples: samples, baseSamples: baseSamples)
    }
}
