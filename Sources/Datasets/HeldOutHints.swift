// A fixed, spread selection of held-out samples and their hints: what `sample --hints-from`, `eval` and the
// validation previews condition on. The test split of MNIST-5k is sorted by label, so the selection strides
// through the data instead of taking the first N.
import Foundation

public struct HintSet {
    public let count: Int
    public let height: Int, width: Int
    public let imageChannels: Int, hintChannels: Int
    public let hints: [Float]              // (N, Ch, H, W) in [0, 1]
    public let images: [Float]             // (N, C, H, W) in [-1, 1], the images the hints belong to
    public let labels: [Int]?              // (N); -1 = no label
    /// For each image, another image of the same label from the same data (another writer), in [-1, 1].
    public let sameLabelOthers: [Float]?
    /// Where each sample came from in its data (indices), and the prompts behind the labels, if any.
    public let indices: [Int]
    public let vocabulary: PromptVocabulary?
}

public enum HeldOutHints {
    /// Evenly spread indices: i * total / count.
    public static func selection(count: Int, of total: Int) -> [Int] {
        (0..<min(count, total)).map { $0 * total / min(count, total) }
    }

    /// `count` samples of `source`, spread over it, with their hints (random kinds use `seed`).
    public static func load(_ source: SampleSource, count: Int, seed: UInt64 = 0) -> HintSet {
        let indices = selection(count: count, of: source.count)
        let plane = source.size * source.size
        let per = source.imageChannels * plane, hintPer = source.hintChannels * plane
        var hints = [Float](repeating: 0, count: indices.count * hintPer)
        var images = [Float](repeating: 0, count: indices.count * per)
        var others = [Float](repeating: 0, count: indices.count * per)
        var byLabel: [Int32: [Int]] = [:]
        if let labels = source.labels { for (i, l) in labels.enumerated() where l >= 0 { byLabel[l, default: []].append(i) } }
        hints.withUnsafeMutableBufferPointer { h in
            images.withUnsafeMutableBufferPointer { im in
                others.withUnsafeMutableBufferPointer { ot in
                    guard let hb = h.baseAddress, let ib = im.baseAddress, let ob = ot.baseAddress else { return }
                    for (k, i) in indices.enumerated() {
                        source.hint(i, seed: seed, into: hb + k * hintPer)
                        source.image(i, into: ib + k * per)
                        // Another sample of the same label: the next one after i (cyclically).
                        if let l = source.labels?[i], let peers = byLabel[l], peers.count > 1,
                           let pos = peers.firstIndex(of: i) {
                            source.image(peers[(pos + 1) % peers.count], into: ob + k * per)
                        }
                    }
                }
            }
        }
        return HintSet(count: indices.count, height: source.size, width: source.size,
                       imageChannels: source.imageChannels, hintChannels: source.hintChannels, hints: hints,
                       images: images, labels: source.labels.map { l in indices.map { Int(l[$0]) } },
                       sameLabelOthers: source.labels == nil ? nil : others, indices: indices,
                       vocabulary: source.vocabulary)
    }

    /// `count` samples of `split` of the data in `spec`, shaped for a model, and their `kind` hints (nil: paired
    /// data's own conditions).
    public static func load(_ spec: DataSpec, split: DatasetSplit, kind: HintKind?, count: Int, imageSize: Int,
                            imageChannels: Int, hintChannels: Int, seed: UInt64 = 0) throws -> HintSet {
        let source = try DatasetCatalog.samples(spec, split: split, imageSize: imageSize, imageChannels: imageChannels,
                                                hintChannels: hintChannels, hint: spec.isPaired ? kind : (kind ?? .canny))
        return load(source, count: count, seed: seed)
    }
}
