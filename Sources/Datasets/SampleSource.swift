// What a training run, an evaluation or a preview reads per sample - the image, its condition (hint) and its
// label - whatever the data is: an image dataset whose hints are computed from the images (MNIST-like IDX/CSV,
// or paired data with --hint), or paired data whose conditions come from its own files. Both serve [-1, 1] images
// (C, S, S) and [0, 1] hints (Ch, S, S).
import Crypto
import Foundation

public protocol SampleSource: AnyObject, Sendable {
    var name: String { get }
    var count: Int { get }
    var size: Int { get }
    var imageChannels: Int { get }
    var hintChannels: Int { get }
    /// (N) class labels, -1 for "no label"; nil when the data has no labels at all.
    var labels: [Int32]? { get }
    /// The prompts behind the labels (paired data), or nil.
    var vocabulary: PromptVocabulary? { get }
    /// Image i, (C, S, S) in [-1, 1].
    func image(_ i: Int, into out: UnsafeMutablePointer<Float>)
    /// The hint of sample i, (Ch, S, S) in [0, 1]; `seed` drives random hint kinds.
    func hint(_ i: Int, seed: UInt64, into out: UnsafeMutablePointer<Float>)
    /// SHA-256 over everything that decides the samples (checkpoints record it so a resume on other data is refused).
    var contentHash: String { get }
}

/// An image dataset whose hints are computed from its images (none without a kind: base training). A one-channel
/// hint is repeated over `hintChannels`.
public final class ComputedHintSamples: SampleSource {
    public let dataset: ImageDataset
    public let provider: HintProvider?
    public let hintChannels: Int
    public let vocabulary: PromptVocabulary?
    private let hash: String

    public init(dataset: ImageDataset, kind: HintKind?, hintChannels: Int, vocabulary: PromptVocabulary? = nil,
                identity: String? = nil) {
        self.dataset = dataset
        provider = kind.map { HintProvider(dataset: dataset, kind: $0) }
        self.hintChannels = hintChannels
        self.vocabulary = vocabulary
        var h = SHA256()
        if let identity { h.update(data: Data(identity.utf8)) } else {
            dataset.pixels.withUnsafeBytes { h.update(bufferPointer: $0) }
            if let labels = dataset.labels { labels.withUnsafeBytes { h.update(bufferPointer: $0) } }
        }
        hash = h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    public var name: String { dataset.name }
    public var count: Int { dataset.count }
    public var size: Int { dataset.height }
    public var imageChannels: Int { dataset.channels }
    public var labels: [Int32]? { dataset.labels }
    public var contentHash: String { hash }

    public func image(_ i: Int, into out: UnsafeMutablePointer<Float>) { dataset.image(i, into: out) }

    public func hint(_ i: Int, seed: UInt64, into out: UnsafeMutablePointer<Float>) {
        let plane = dataset.height * dataset.width
        guard let provider else { out.update(repeating: 0, count: hintChannels * plane); return }
        provider.hint(i, seed: seed, into: out)
        for c in 1..<max(1, hintChannels) { (out + c * plane).update(from: out, count: plane) }
    }
}

/// Paired data whose conditions come from its files (decoded once into the memory-mapped cache).
public final class PairedSamples: SampleSource {
    public let paired: PairedImages
    public let name: String
    public init(_ paired: PairedImages, name: String) { self.paired = paired; self.name = name }

    public var count: Int { paired.count }
    public var size: Int { paired.settings.size }
    public var imageChannels: Int { paired.settings.imageChannels }
    public var hintChannels: Int { paired.settings.conditioningChannels }
    public var labels: [Int32]? { paired.labels }
    public var vocabulary: PromptVocabulary? { paired.vocabulary }
    /// The cache's name is a hash of every row's files (paths, sizes, times), prompts and the decode settings.
    public var contentHash: String { paired.cacheFile.deletingPathExtension().lastPathComponent }
    public func image(_ i: Int, into out: UnsafeMutablePointer<Float>) { paired.image(i, into: out) }
    public func hint(_ i: Int, seed: UInt64, into out: UnsafeMutablePointer<Float>) { paired.condition(i, into: out) }
}
