// A fixed, class-spread selection of held-out images and their hints: what `sample --hints-from`, `eval` and the
// validation previews condition on. The test split of MNIST-5k is sorted by label, so the selection strides
// through it instead of taking the first N.
import Foundation

public struct HintSet {
    public let count: Int
    public let height: Int, width: Int
    public let hints: [Float]              // (N, 1, H, W) in [0, 1]
    public let images: [Float]             // (N, 1, H, W) in [-1, 1], the images the hints came from
    public let labels: [Int]?              // (N)
    /// For each image, another image of the same label from the same split (another writer), in [-1, 1].
    public let sameLabelOthers: [Float]?
}

public enum HeldOutHints {
    /// Evenly spread indices: i * total / count.
    public static func selection(count: Int, of total: Int) -> [Int] {
        (0..<min(count, total)).map { $0 * total / min(count, total) }
    }

    /// `count` images of `split` of the dataset and their `kind` hints (deterministic kinds; random ones use `seed`),
    /// images of `split` shaped (channels, imageSize, imageSize) and their hints.
    public static func load(_ spec: DataSpec, split: DatasetSplit, kind: HintKind, count: Int, imageSize: Int,
                            channels: Int, seed: UInt64 = 0) throws -> HintSet {
        let dataset = try DatasetCatalog.load(spec, split: split, imageSize: imageSize, channels: channels)
        let indices = selection(count: count, of: dataset.count)
        let provider = HintProvider(dataset: dataset, kind: kind)
        let per = dataset.channels * dataset.height * dataset.width
        var hints = [Float](repeating: 0, count: indices.count * per)
        var images = [Float](repeating: 0, count: indices.count * per)
        var others = [Float](repeating: 0, count: indices.count * per)
        var byLabel: [Int32: [Int]] = [:]
        if let labels = dataset.labels { for (i, l) in labels.enumerated() { byLabel[l, default: []].append(i) } }
        hints.withUnsafeMutableBufferPointer { h in
            images.withUnsafeMutableBufferPointer { im in
                others.withUnsafeMutableBufferPointer { ot in
                    for (k, i) in indices.enumerated() {
                        provider.hint(i, seed: seed, into: h.baseAddress! + k * per)
                        dataset.image(i, into: im.baseAddress! + k * per)
                        if let l = dataset.labels?[i], let peers = byLabel[l], peers.count > 1 {
                            let pos = peers.firstIndex(of: i)!
                            dataset.image(peers[(pos + 1) % peers.count], into: ot.baseAddress! + k * per)
                        }
                    }
                }
            }
        }
        return HintSet(count: indices.count, height: dataset.height, width: dataset.width, hints: hints, images: images,
                       labels: dataset.labels.map { l in indices.map { Int(l[$0]) } },
                       sameLabelOthers: dataset.labels == nil ? nil : others)
    }
}
