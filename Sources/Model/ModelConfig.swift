// The network's hyper-parameters (ARCHITECTURE.md "Config"): a Codable value with snake_case JSON keys, the named
// presets, and validation that names the bad field.
import Foundation
import SafeTensors

public struct ModelConfig: Codable, Sendable, Hashable {
    public var imageSize: Int
    public var inChannels: Int
    public var modelChannels: Int
    public var channelMult: [Int]
    public var numResBlocks: Int
    public var attentionLevels: [Int]
    public var numHeads: Int
    public var normGroups: Int
    public var numClasses: Int
    public var hintChannels: Int
    public var hintBlockChannels: [Int]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case imageSize = "image_size", inChannels = "in_channels", modelChannels = "model_channels"
        case channelMult = "channel_mult", numResBlocks = "num_res_blocks", attentionLevels = "attention_levels"
        case numHeads = "num_heads", normGroups = "norm_groups", numClasses = "num_classes"
        case hintChannels = "hint_channels", hintBlockChannels = "hint_block_channels"
    }

    public init(imageSize: Int = 28, inChannels: Int = 1, modelChannels: Int = 32, channelMult: [Int] = [1, 2, 2],
                numResBlocks: Int = 2, attentionLevels: [Int] = [2], numHeads: Int = 4, normGroups: Int = 8,
                numClasses: Int = 0, hintChannels: Int = 1, hintBlockChannels: [Int] = [16, 16, 32, 32]) {
        self.imageSize = imageSize; self.inChannels = inChannels; self.modelChannels = modelChannels
        self.channelMult = channelMult; self.numResBlocks = numResBlocks; self.attentionLevels = attentionLevels
        self.numHeads = numHeads; self.normGroups = normGroups; self.numClasses = numClasses
        self.hintChannels = hintChannels; self.hintBlockChannels = hintBlockChannels
    }

    /// Width of the time embedding (4C).
    public var embedDim: Int { 4 * modelChannels }
    public var isClassConditional: Bool { numClasses > 0 }

    public static let mnist = ModelConfig()
    public static let mnistClass = ModelConfig(numClasses: 10)
    public static let tiny = ModelConfig(imageSize: 8, modelChannels: 8, channelMult: [1, 2], numResBlocks: 1,
                                         attentionLevels: [1], numHeads: 2, normGroups: 2, hintBlockChannels: [4, 8])
    public static let tinyClass: ModelConfig = { var c = ModelConfig.tiny; c.numClasses = 3; return c }()

    /// The fill-circles task: 32x32 RGB images and RGB conditions, 64 prompt classes, otherwise mnist.
    public static let fill32 = ModelConfig(imageSize: 32, inChannels: 3, numClasses: 64, hintChannels: 3)
    /// A 64x64 RGB config for benchmarks of larger work.
    public static let scale64 = ModelConfig(imageSize: 64, inChannels: 3, modelChannels: 64, channelMult: [1, 2, 2, 2],
                                            normGroups: 32, hintChannels: 3)

    public static let presets: [(name: String, config: ModelConfig)] = [
        ("mnist", .mnist), ("mnist-class", .mnistClass), ("tiny", .tiny), ("tiny-class", .tinyClass),
        ("fill32", .fill32), ("scale64", .scale64),
    ]

    /// A preset name, or a path to a JSON file holding a config.
    public static func named(_ nameOrPath: String) throws -> ModelConfig {
        if let preset = presets.first(where: { $0.name == nameOrPath }) { return preset.config }
        let url = URL(fileURLWithPath: nameOrPath)
        // "" would name the working directory.
        guard !nameOrPath.isEmpty, FileManager.default.fileExists(atPath: url.path) else {
            throw ConfigError(field: "config", message: "'\(nameOrPath)' is neither a preset ("
                + presets.map(\.name).joined(separator: ", ") + ") nor an existing JSON file")
        }
        return try load(from: url)
    }

    public static func load(from url: URL) throws -> ModelConfig {
        let data: Foundation.Data
        do { data = try Foundation.Data(contentsOf: url) } catch {
            throw ConfigError(field: "config", message: "cannot read \(url.path): \(FileReadFailure.reason(url, error))")
        }
        return try decode(json: data, source: url.path)
    }

    public static func decode(json: Foundation.Data, source: String) throws -> ModelConfig {
        // Unknown keys are refused: a misspelt or unsupported field ("dropout") must not be silently ignored.
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw ConfigError(field: "config", message: "\(source) is not a JSON object")
        }
        if let key = JSONDuplicateKeys.first(in: json) {
            throw ConfigError(field: key, message: "appears more than once in \(source); JSON parsers keep only one of the values, so say it once")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigError(field: unknown, message: "unknown key in \(source); the known keys are "
                              + known.sorted().joined(separator: ", "))
        }
        let config: ModelConfig
        do { config = try JSONDecoder().decode(ModelConfig.self, from: json) } catch let DecodingError.keyNotFound(key, _) {
            throw ConfigError(field: key.stringValue, message: "missing in \(source)")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ConfigError(field: context.codingPath.map(\.stringValue).joined(separator: "."),
                              message: "wrong type in \(source): \(context.debugDescription)")
        } catch {
            throw ConfigError(field: "config", message: "\(source) is not a valid config JSON: \(error)")
        }
        try config.validate()
        return config
    }

    /// Canonical JSON (sorted keys) stored in weight-file metadata and checkpoint manifests.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding a struct of integers cannot fail; "{}" keeps even that impossible case from crashing.
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Upper bounds on every size: far above anything a CPU trains, low enough that building the network's
    /// tables and counting its memory stays instant (a config is input: it must not be able to hang or exhaust
    /// the machine before it is refused).
    public static let limits: [String: Int] = [
        "image_size": 2048, "in_channels": 16, "model_channels": 4096, "channel_mult": 64, "channel_mult.count": 8,
        "num_res_blocks": 16, "num_heads": 1024, "norm_groups": 4096, "num_classes": 1_000_000, "hint_channels": 16,
        "hint_block_channels": 4096, "hint_block_channels.count": 16,
    ]

    /// Checks every constraint the network needs; the error names the field and why.
    public func validate() throws {
        func fail(_ field: String, _ why: String) throws -> Never { throw ConfigError(field: field, message: why) }
        func bound(_ field: String, _ value: Int) throws {
            if let max = Self.limits[field], value > max { try fail(field, "\(value) is above the supported maximum \(max)") }
        }
        try bound("image_size", imageSize); try bound("in_channels", inChannels)
        try bound("model_channels", modelChannels); try bound("num_res_blocks", numResBlocks)
        try bound("num_heads", numHeads); try bound("norm_groups", normGroups); try bound("num_classes", numClasses)
        try bound("hint_channels", hintChannels)
        try bound("channel_mult.count", channelMult.count); try bound("hint_block_channels.count", hintBlockChannels.count)
        for m in channelMult { try bound("channel_mult", m) }
        for w in hintBlockChannels { try bound("hint_block_channels", w) }
        if Set(attentionLevels).count != attentionLevels.count {
            try fail("attention_levels", "lists a level twice: \(attentionLevels)")
        }
        if imageSize < 1 { try fail("image_size", "must be positive, got \(imageSize)") }
        if inChannels < 1 { try fail("in_channels", "must be positive, got \(inChannels)") }
        if modelChannels < 2 || modelChannels % 2 != 0 {
            try fail("model_channels", "must be even and >= 2 (the timestep embedding is half cos, half sin), got \(modelChannels)")
        }
        if channelMult.isEmpty || channelMult.contains(where: { $0 < 1 }) {
            try fail("channel_mult", "must be a non-empty list of positive multipliers, got \(channelMult)")
        }
        if numResBlocks < 1 { try fail("num_res_blocks", "must be at least 1, got \(numResBlocks)") }
        if numHeads < 1 { try fail("num_heads", "must be at least 1, got \(numHeads)") }
        if normGroups < 1 { try fail("norm_groups", "must be at least 1, got \(normGroups)") }
        if numClasses < 0 { try fail("num_classes", "must be 0 (unconditional) or the number of classes, got \(numClasses)") }
        if hintChannels < 1 { try fail("hint_channels", "must be positive, got \(hintChannels)") }
        if hintBlockChannels.isEmpty || hintBlockChannels.contains(where: { $0 < 1 }) {
            try fail("hint_block_channels", "must be a non-empty list of positive widths, got \(hintBlockChannels)")
        }
        for level in attentionLevels where level < 0 || level >= channelMult.count {
            try fail("attention_levels", "level \(level) does not exist (channel_mult has \(channelMult.count) levels)")
        }
        let downsamples = channelMult.count - 1
        if imageSize % (1 << downsamples) != 0 {
            try fail("image_size", "\(imageSize) cannot be halved \(downsamples) times by the levels of channel_mult \(channelMult)")
        }
        for (level, mult) in channelMult.enumerated() {
            let width = modelChannels * mult
            if width % normGroups != 0 {
                try fail("norm_groups", "level \(level) has \(width) channels, not divisible by \(normGroups) groups")
            }
            if attentionLevels.contains(level) || level == channelMult.count - 1 {
                if width % numHeads != 0 {
                    try fail("num_heads", "level \(level) has \(width) channels, not divisible by \(numHeads) heads")
                }
            }
        }
        // Decoder ResBlocks normalise cat([h, skip]); both halves are multiples of model_channels.
        if modelChannels % normGroups != 0 {
            try fail("norm_groups", "model_channels \(modelChannels) is not divisible by \(normGroups) groups")
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let field: String
    public let message: String
    public var description: String { "config field '\(field)': \(message)" }
}
