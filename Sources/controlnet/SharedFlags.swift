// Option groups several commands share, so a flag means the same thing, with the same help, everywhere.
import ArgumentParser
import Foundation
import Kernels
import Datasets
import Model
import Training

/// --config: the model a command builds.
struct ModelFlags: ParsableArguments {
    @Option(help: "Model config: a preset (\(ModelConfig.presets.map(\.name).joined(separator: ", "))) or a JSON file.")
    var config = "mnist"

    /// The config, or a ValidationError naming the field.
    func load() throws -> ModelConfig {
        do { return try ModelConfig.named(config) } catch { throw ValidationError("--config: \(error)") }
    }
}

/// --data and --data-dir: where images come from; the paired-data columns and filter.
struct DataFlags: ParsableArguments {
    @Option(help: ArgumentHelp("Dataset: mnist5k, fashion, a path (IDX images file or .csv/.csv.gz), or a paired-data directory (fill50k's prompt.json or diffusers' metadata.jsonl)."))
    var data = "mnist5k"
    @Option(help: "Directory holding downloaded data (mnist_5k.csv.gz).")
    var dataDir = "data"
    @Option(help: "Paired data: the image column (default: target, or file_name).")
    var imageColumn: String?
    @Option(help: "Paired data: the condition column (default: source, or conditioning_image).")
    var conditioningImageColumn: String?
    @Option(help: "Paired data: the prompt column (default: prompt, or text).")
    var captionColumn: String?
    @Flag(help: "Paired data: leave out rows whose files are missing or unreadable (named and counted) instead of stopping.")
    var skipBadImages = false
    @Option(help: "Paired data: resampling filter, bilinear (diffusers') or area.")
    var resizeFilter: ResizeFilter = .bilinear

    func spec(resize: Bool) -> DataSpec {
        var s = DataSpec(source: data, directory: dataDir, resize: resize)
        s.imageColumn = imageColumn; s.conditioningColumn = conditioningImageColumn; s.captionColumn = captionColumn
        s.skipBadImages = skipBadImages; s.filter = resizeFilter
        return s
    }
}

extension ResizeFilter: ExpressibleByArgument {}

extension LRScheduleKind: ExpressibleByArgument {}
extension TrainingMode: ExpressibleByArgument {}
extension SamplerKind: ExpressibleByArgument {}
extension DatasetSplit: ExpressibleByArgument {}

/// "what done/total" progress on stderr: redrawn in place on a terminal, one final line otherwise.
func reportProgress(_ what: String, _ done: Int, _ total: Int) {
    if isatty(STDERR_FILENO) != 0 {
        Console.error("\r\(what) \(done)/\(total)\(done == total ? "\n" : "")")
    } else if done == total {
        Console.error("\(what) \(done)/\(total)\n")
    }
}
