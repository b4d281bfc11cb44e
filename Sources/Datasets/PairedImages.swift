// A decoded paired dataset, memory-mapped from its cache file (so ranks on one node share the pages): uint8 images
// (N, C, S, S), conditions (N, Ch, S, S), the prompts, their vocabulary and labels. And the cache file's format:
//   [images (N, C, S, S)] [conditions (N, Ch, S, S)] [header JSON] [header length: UInt64 LE] ["CNPAIR01"]
// The images start at offset 0 (page-aligned for mmap); the header is last because its prompts and skipped rows
// are only known once every row is decoded.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cache file's header (JSON) and footer.
struct PairedCacheFile: Codable, Equatable {
    static let version = 1
    static let magic = Array("CNPAIR01".utf8)

    var version: Int
    var key: String
    var count: Int
    var size: Int
    var imageChannels: Int
    var conditioningChannels: Int
    var filter: String
    /// Manifest path when built (informational: the key does not depend on it).
    var manifest: String
    var prompts: [String]
    /// The manifest line of each sample.
    var lines: [Int]
    var skipped: [SkippedRow]

    var imagesBytes: Int { count * imageChannels * size * size }
    var conditionsBytes: Int { count * conditioningChannels * size * size }

    /// The header and footer bytes to append after the pixel data.
    func trailer() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = [UInt8](try encoder.encode(self))
        var length = UInt64(json.count).littleEndian
        return json + withUnsafeBytes(of: &length) { Array($0) } + Self.magic
    }
}

public final class PairedImages: @unchecked Sendable {  // immutable after init; the mapping is read-only
    public let count: Int
    public let settings: DecodeSettings
    /// The prompt of each sample ("" = none). (N)
    public let prompts: [String]
    /// The manifest line (1-based) each sample came from. (N)
    public let lines: [Int]
    /// Rows left out (only with skipBad).
    public let skipped: [SkippedRow]
    /// The sorted distinct non-empty prompts, and each sample's index in it (-1 for no prompt). labels: (N)
    public let vocabulary: PromptVocabulary
    public let labels: [Int32]
    /// The cache file, and whether it was reused (false: decoded in this call).
    public let cacheFile: URL
    public let reused: Bool

    private let base: UnsafeRawPointer
    private let length: Int

    /// Maps `url` and checks it against `key` and `settings`; nil when it is absent, stale or damaged (the caller
    /// then rebuilds it).
    init?(mapping url: URL, key: String, settings: DecodeSettings, reused: Bool) {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size >= 16 else { return nil }
        let length = Int(info.st_size)
        guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return nil }
        let base = UnsafeRawPointer(map)
        guard let header = Self.header(base, length), header.key == key, header.version == PairedCacheFile.version,
              header.size == settings.size, header.imageChannels == settings.imageChannels,
              header.conditioningChannels == settings.conditioningChannels,
              header.filter == settings.filter.rawValue, header.prompts.count == header.count,
              header.lines.count == header.count
        else {
            munmap(map, length)
            return nil
        }
        self.base = base
        self.length = length
        self.count = header.count
        self.settings = settings
        self.prompts = header.prompts
        self.lines = header.lines
        self.skipped = header.skipped
        self.vocabulary = PromptVocabulary(prompts: header.prompts)
        self.labels = vocabulary.labels(for: header.prompts)
        self.cacheFile = url
        self.reused = reused
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    /// Parses the footer and header; nil unless the sizes add up exactly to the file's length.
    static func header(_ base: UnsafeRawPointer, _ length: Int) -> PairedCacheFile? {
        let footer = UnsafeRawBufferPointer(start: base + length - 16, count: 16)
        guard Array(footer[8 ..< 16]) == PairedCacheFile.magic else { return nil }
        let headerLength = Int(UInt64(littleEndian: footer.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
        guard headerLength > 0 && headerLength <= length - 16 else { return nil }
        let json = Data(bytes: base + length - 16 - headerLength, count: headerLength)
        guard let header = try? JSONDecoder().decode(PairedCacheFile.self, from: json),
              header.imagesBytes + header.conditionsBytes + headerLength + 16 == length
        else { return nil }
        return header
    }

    /// All images, (N, C, S, S) uint8.
    public var images: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: count * settings.imageBytes)
    }

    /// All conditions, (N, Ch, S, S) uint8.
    public var conditions: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: (base + count * settings.imageBytes).assumingMemoryBound(to: UInt8.self),
                            count: count * settings.conditionBytes)
    }

    /// Image i mapped to [-1, 1] (0 -> -1, 255 -> 1), the range the diffusion model trains on. out: (C, S, S).
    public func image(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
        let n = settings.imageBytes
        let src = images.baseAddress! + i * n
        for k in 0 ..< n { out[k] = Float(src[k]) / 127.5 - 1 }
    }

    /// Condition i mapped to [0, 1], the range ControlNet hints use. out: (Ch, S, S).
    public func condition(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(i >= 0 && i < count, "condition index \(i) out of range 0..<\(count)")
        let n = settings.conditionBytes
        let src = conditions.baseAddress! + i * n
        for k in 0 ..< n { out[k] = Float(src[k]) / 255 }
    }

    /// The images as an in-memory ImageDataset (a copy, with the labels; -1 = no prompt).
    public func imageDataset(name: String) -> ImageDataset {
        ImageDataset(name: name, count: count, channels: settings.imageChannels, height: settings.size,
                     width: settings.size, pixels: Array(images), labels: labels)
    }

    /// The conditions as an in-memory ImageDataset (a copy, with the labels).
    public func conditionDataset(name: String) -> ImageDataset {
        ImageDataset(name: name, count: count, channels: settings.conditioningChannels, height: settings.size,
                     width: settings.size, pixels: Array(conditions), labels: labels)
    }
}

extension PairedCacheFile {
    /// The header of the cache file at `path`, or nil when it is not a complete cache file.
    static func read(_ path: String) -> PairedCacheFile? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size >= 16 else { return nil }
        let length = Int(info.st_size)
        guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return nil }
        defer { munmap(map, length) }
        return PairedImages.header(UnsafeRawPointer(map), length)
    }
}
