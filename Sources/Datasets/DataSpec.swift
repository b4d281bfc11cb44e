// Which data a command reads, as the user named it (--data, --data-dir, --resize), and the one way to load a split
// of it shaped for a model: its channels must match, and its size must match unless resampling was asked for.
import Foundation

public struct DataSpec: Sendable, Equatable {
    /// "mnist5k", "fashion", or a path (IDX images file, .csv/.csv.gz).
    public var source: String
    /// Where downloaded data lives (mnist_5k.csv.gz, fashion-mnist/).
    public var directory: String
    /// Resample images whose size differs from the model's.
    public var resize: Bool

    public init(source: String, directory: String = "data", resize: Bool = false) {
        self.source = source; self.directory = directory; self.resize = resize
    }
}

extension DatasetCatalog {
    /// `split` of the data in `spec`, as (N, channels, imageSize, imageSize) images.
    public static func load(_ spec: DataSpec, split: DatasetSplit, imageSize: Int, channels: Int) throws -> ImageDataset {
        var data = try load(spec.source, split: split, dataDirectory: URL(fileURLWithPath: spec.directory))
        guard data.channels == channels else {
            throw DatasetError.shapeMismatch(dataset: spec.source, found: "\(data.channels)-channel",
                                             expected: "\(channels)-channel",
                                             fix: "Choose a config whose in_channels is \(data.channels).")
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
}
