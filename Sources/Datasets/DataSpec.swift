// Which data a command reads, as the user named it (--data, --data-dir, --resize, the paired-data columns), and the
// one way to open it for a model: an image dataset (mnist5k, fashion, an IDX or CSV path) whose hints are computed
// from the images, or a paired-data directory (fill50k's prompt.json or diffusers' metadata.jsonl) whose conditions
// come from its files unless a hint kind is asked for. Channels must match the model; a size must match unless
// resampling was asked for (paired data is always resized, as diffusers does: short side, then centre crop).
import Foundation

public struct DataSpec: Sendable, Equatable {
    /// "mnist5k", "fashion", a path (IDX images file, .csv/.csv.gz), or a paired-data directory.
    public var source: String
    /// Where downloaded data lives (mnist_5k.csv.gz, fashion-mnist/).
    public var directory: String
    /// Resample images whose size differs from the model's.
    public var resize: Bool
    /// Paired data: other names for the image, condition and prompt columns.
    public var imageColumn: String?, conditioningColumn: String?, captionColumn: String?
    /// Paired data: leave out unreadable rows (named and counted) instead of stopping.
    public var skipBadImages = false
    /// Paired data: the resampling filter.
    public var filter: ResizeFilter = .bilinear

    public init(source: String, directory: String = "data", resize: Bool = false) {
        self.source = source; self.directory = directory; self.resize = resize
    }

    /// True when `source` names paired data: a directory holding prompt.json or metadata.jsonl, or that file.
    /// The files (or directories) this spec reads, for the output guard.
    public var inputFiles: [String] {
        DatasetCatalog.inputFiles(source, dataDirectory: URL(fileURLWithPath: directory))
    }

    public var isPaired: Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else { return false }
        if !isDirectory.boolValue { return ["prompt.json", "metadata.jsonl"].contains(URL(fileURLWithPath: source).lastPathComponent) }
        return ["prompt.json", "metadata.jsonl"].contains { FileManager.default.fileExists(atPath: source + "/" + $0) }
    }
}

extension DatasetCatalog {
    /// `split` of the data in `spec`, as (N, channels, imageSize, imageSize) images (image datasets only).
    public static func load(_ spec: DataSpec, split: DatasetSplit, imageSize: Int, channels: Int) throws -> ImageDataset {
        var data = try load(spec.source, split: split, dataDirectory: URL(fileURLWithPath: spec.directory))
        if data.channels != channels {
            // Gray data for an RGB model is repeated over the channels; anything else does not fit.
            guard data.channels == 1 && channels == 3 else {
                throw DatasetError.shapeMismatch(dataset: spec.source, found: "\(data.channels)-channel",
                                                 expected: "\(channels)-channel",
                                                 fix: "Choose a config whose in_channels is \(data.channels).")
            }
            data = data.repeatingChannels(3)
        }
        if data.height != imageSize || data.width != imageSize {
            guard spec.resize else {
                throw DatasetError.shapeMismatch(dataset: spec.source, found: "\(data.height)x\(data.width)",
                                                 expected: "\(imageSize)x\(imageSize)",
                                                 fix: "Pass --resize to resample them.")
            }
            data = data.resized(height: imageSize, width: imageSize)
        }
        return data
    }

    /// The samples a model of `imageSize` with `imageChannels` image and `hintChannels` hint channels reads from
    /// `spec`. `hint`: compute hints of that kind from the images (nil: paired data's own conditions, or none).
    /// Paired data has no splits: `split` is for image datasets. `progress(done, total)` reports decoding.
    public static func samples(_ spec: DataSpec, split: DatasetSplit, imageSize: Int, imageChannels: Int,
                               hintChannels: Int, hint: HintKind?, threads: Int = 1,
                               progress: (Int, Int) -> Void = { _, _ in }) throws -> SampleSource {
        guard spec.isPaired else {
            let data = try load(spec, split: split, imageSize: imageSize, channels: imageChannels)
            return ComputedHintSamples(dataset: data, kind: hint, hintChannels: hintChannels)
        }
        let opened = try PairedDataset.open(directory: URL(fileURLWithPath: spec.source), imageColumn: spec.imageColumn,
                                            conditioningColumn: spec.conditioningColumn, captionColumn: spec.captionColumn)
        let settings = try DecodeSettings(size: imageSize, imageChannels: imageChannels,
                                          conditioningChannels: hint == nil ? hintChannels : 1, filter: spec.filter)
        let paired = try opened.load(settings: settings, skipBad: spec.skipBadImages, threads: threads, progress: progress)
        let name = URL(fileURLWithPath: spec.source).lastPathComponent
        guard let hint else { return PairedSamples(paired, name: name) }
        return ComputedHintSamples(dataset: paired.imageDataset(name: name), kind: hint, hintChannels: hintChannels,
                                   vocabulary: paired.vocabulary, identity: PairedSamples(paired, name: name).contentHash)
    }
}

extension ImageDataset {
    /// The images with their one channel repeated `channels` times.
    public func repeatingChannels(_ channels: Int) -> ImageDataset {
        precondition(self.channels == 1, "only one-channel images are repeated")
        let plane = height * width
        var out = [UInt8](repeating: 0, count: count * channels * plane)
        for i in 0..<count {
            for c in 0..<channels {
                for k in 0..<plane { out[(i * channels + c) * plane + k] = pixels[i * plane + k] }
            }
        }
        return ImageDataset(name: name, count: count, channels: channels, height: height, width: width, pixels: out,
                            labels: labels)
    }
}
