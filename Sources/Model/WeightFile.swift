// Saving and loading a network's weights as safetensors under the spec's names (the names PyTorch's reference
// model uses, so `load_state_dict(strict=True)` takes the file as it is), with the config in the metadata.
import Foundation
import SafeTensors

public enum WeightKind: String, Sendable { case unet, controlnet }

public struct WeightFileError: Error, CustomStringConvertible {
    public let path: String
    public let problems: [String]
    public var description: String {
        "\(path) does not fit this model:\n" + problems.map { "  - " + $0 }.joined(separator: "\n")
    }
}

public enum WeightFile {
    public static let formatKey = "format"

    /// Writes every tensor of `table` from `params` (the arena it describes), atomically.
    public static func save(kind: WeightKind, table: ParameterTable, params: UnsafePointer<Float>, config: ModelConfig,
                            to url: URL, extraMetadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter()
        for e in table.entries {
            try writer.add(e.name, shape: e.shape, floats: UnsafeBufferPointer(start: params + e.offset, count: e.count))
        }
        var meta = extraMetadata
        meta["config"] = config.json
        meta[formatKey] = "controlnet-swift/\(kind.rawValue)"
        try writer.write(to: url, metadata: meta)
    }

    /// Reads the config stored in a weight file's metadata.
    public static func config(of file: SafeTensorsFile) throws -> ModelConfig {
        guard let json = file.metadata["config"] else {
            throw WeightFileError(path: file.url.path, problems: ["no 'config' in the metadata; save it with this tool or add it"])
        }
        return try ModelConfig.decode(json: Foundation.Data(json.utf8), source: file.url.path + " metadata")
    }

    /// Loads into `params` after checking the config and every name and shape; `prefix` selects tensors inside a
    /// larger file (e.g. "unet." in the reference fixtures). Lists every mismatch at once.
    public static func load(_ file: SafeTensorsFile, table: ParameterTable, into params: UnsafeMutablePointer<Float>,
                            expecting config: ModelConfig?, prefix: String = "") throws {
        var problems: [String] = []
        if let config {
            do {
                let stored = try Self.config(of: file)
                if stored != config {
                    problems.append("config differs: file has \(stored.json), expected \(config.json)")
                }
            } catch let e as WeightFileError { problems += e.problems }
        }
        let fileNames = Set(file.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) })
        let wanted = Set(table.names)
        for name in table.names where !fileNames.contains(name) { problems.append("missing tensor \(prefix + name)") }
        for name in fileNames.sorted() where !wanted.contains(name) { problems.append("unexpected tensor \(prefix + name)") }
        for e in table.entries where fileNames.contains(e.name) {
            if let info = file.info(prefix + e.name), info.shape != e.shape {
                problems.append("\(prefix + e.name) has shape \(info.shape), expected \(e.shape)")
            }
        }
        guard problems.isEmpty else { throw WeightFileError(path: file.url.path, problems: problems) }
        for e in table.entries {
            try file.copyFloats(prefix + e.name, into: params + e.offset, count: e.count)
            // Weights are checked once, here: a NaN or Inf would otherwise train or sample to garbage silently.
            if let i = (0..<e.count).first(where: { !params[e.offset + $0].isFinite }) {
                problems.append("tensor \(prefix + e.name) holds a non-finite value (\(params[e.offset + i]) at element \(i))")
            }
        }
        guard problems.isEmpty else { throw WeightFileError(path: file.url.path, problems: problems) }
    }
}
