// Option groups several commands share, so a flag means the same thing, with the same help, everywhere.
import ArgumentParser
import Foundation
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

/// --data and --data-dir: where images come from.
struct DataFlags: ParsableArguments {
    @Option(help: "Dataset: mnist5k, fashion, or a path (IDX images file or .csv/.csv.gz).")
    var data = "mnist5k"
    @Option(help: "Directory holding downloaded data (mnist_5k.csv.gz).")
    var dataDir = "data"

    func spec(resize: Bool) -> DataSpec { DataSpec(source: data, directory: dataDir, resize: resize) }
}

extension LRScheduleKind: ExpressibleByArgument {}
extension TrainingMode: ExpressibleByArgument {}
extension SamplerKind: ExpressibleByArgument {}
extension DatasetSplit: ExpressibleByArgument {}

/// "what done/total" progress on stderr: redrawn in place on a terminal, one final line otherwise.
func reportProgress(_ what: String, _ done: Int, _ total: Int) {
    if isatty(STDERR_FILENO) != 0 {
        FileHandle.standardError.write(Data("\r\(what) \(done)/\(total)\(done == total ? "\n" : "")".utf8))
    } else if done == total {
        FileHandle.standardError.write(Data("\(what) \(done)/\(total)\n".utf8))
    }
}
