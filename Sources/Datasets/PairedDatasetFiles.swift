// Resolving a paired dataset's files: each manifest path through realpath (so a symlink pointing out of the
// directory is refused, naming the row), with its size and modification time, which key the decode cache; and
// decoding one row to the model's shape (decode -> channels -> short-side resize + centre crop).
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How rows are decoded: the square side S, the image and condition channels (1 or 3), the resize filter.
public struct DecodeSettings: Sendable, Hashable {
    public let size: Int
    public let imageChannels: Int
    public let conditioningChannels: Int
    public let filter: ResizeFilter

    public init(size: Int, imageChannels: Int, conditioningChannels: Int, filter: ResizeFilter = .bilinear) throws {
        guard size > 0 && size <= 4096 else {
            throw ImageDataError.invalidArgument(name: "size", value: "\(size)", expected: "1...4096 pixels")
        }
        for (name, c) in [("imageChannels", imageChannels), ("conditioningChannels", conditioningChannels)]
        where c != 1 && c != 3 {
            throw ImageDataError.invalidArgument(name: name, value: "\(c)", expected: "1 (gray) or 3 (RGB)")
        }
        self.size = size
        self.imageChannels = imageChannels
        self.conditioningChannels = conditioningChannels
        self.filter = filter
    }

    /// Bytes of one image (C, S, S) and of one condition (Ch, S, S).
    public var imageBytes: Int { imageChannels * size * size }
    public var conditionBytes: Int { conditioningChannels * size * size }
}

/// A manifest path resolved on disk.
struct ResolvedFile: Sendable {
    let path: String
    let size: Int64
    let mtimeNanoseconds: Int64
}

/// A row that cannot be used, and why (kept in the cache so a reuse reports the same rows).
public struct SkippedRow: Sendable, Equatable, Codable {
    public let line: Int
    public let column: String
    public let file: String
    public let problem: String
}

extension PairedDataset {
    /// The real path of the directory, every row's two files resolved (nil where missing or unreadable: the
    /// decode reports those), and the cache key: a SHA-256 of the layout, columns, every row's paths, sizes,
    /// modification times and prompt, and the settings. The directory's own path is not part of it, so a moved
    /// dataset keeps its cache as long as the files keep their times.
    func resolveFiles(settings: DecodeSettings) throws -> (files: [(ResolvedFile?, ResolvedFile?)], key: String) {
        guard let root = realPath(directory.path) else {
            throw DatasetError.unreadable(path: directory.path, reason: "realpath failed")
        }
        var hasher = SHA256()
        func feed(_ s: String) { hasher.update(data: Array(s.utf8) + [0]) }
        feed("controlnet-paired-cache v\(PairedCacheFile.version)")
        feed(layout.rawValue); feed(imageColumn); feed(conditioningColumn); feed(captionColumn)
        feed("\(settings.size) \(settings.imageChannels) \(settings.conditioningChannels) \(settings.filter.rawValue)")
        var files: [(ResolvedFile?, ResolvedFile?)] = []
        files.reserveCapacity(rows.count)
        for row in rows {
            let image = try resolve(row.image, root: root, row: row, column: imageColumn)
            let condition = try resolve(row.conditioning, root: root, row: row, column: conditioningColumn)
            feed("\(row.line)"); feed(row.prompt)
            for (relative, file) in [(row.image, image), (row.conditioning, condition)] {
                feed(relative)
                feed(file.map { "\($0.size) \($0.mtimeNanoseconds)" } ?? "missing")
            }
            files.append((image, condition))
        }
        let key = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return (files, key)
    }

    /// realpath + stat of DIR/relative. nil when the file cannot be resolved or stat'ed (missing, permissions):
    /// decoding it then reports the precise error. A file whose real path is outside `root` is refused.
    func resolve(_ relative: String, root: String, row: Row, column: String) throws -> ResolvedFile? {
        let joined = directory.path.hasSuffix("/") ? directory.path + relative : directory.path + "/" + relative
        guard let real = realPath(joined) else { return nil }
        guard real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw ImageDataError.pathEscapes(manifest: manifest.path, line: row.line, column: column, path: relative,
                                             reason: "resolves (through a symlink) to \(real), outside \(root)")
        }
        var info = stat()
        guard stat(real, &info) == 0 else { return nil }
        let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        return ResolvedFile(path: real, size: Int64(info.st_size), mtimeNanoseconds: mtime)
    }

    /// Decodes row `index` uncached: image (C, S, S) and condition (Ch, S, S) uint8. Errors name the manifest row.
    public func decodeRow(_ index: Int, settings: DecodeSettings) throws -> (image: [UInt8], condition: [UInt8]) {
        guard rows.indices.contains(index) else {
            throw ImageDataError.invalidArgument(name: "row index", value: "\(index)", expected: "0..<\(rows.count)")
        }
        let row = rows[index]
        let root = realPath(directory.path) ?? directory.path
        let image = try resolve(row.image, root: root, row: row, column: imageColumn)
        let condition = try resolve(row.conditioning, root: root, row: row, column: conditioningColumn)
        return try decodeRow(index, files: (image, condition), settings: settings)
    }

    /// Decodes one row from its resolved files; a failure is ImageDataError.badRow naming the manifest line.
    func decodeRow(_ index: Int, files: (ResolvedFile?, ResolvedFile?), settings: DecodeSettings) throws
        -> (image: [UInt8], condition: [UInt8])
    {
        let row = rows[index]
        func one(_ relative: String, _ file: ResolvedFile?, column: String, channels: Int) throws -> [UInt8] {
            let path = file?.path ?? directory.appendingPathComponent(relative).path
            do {
                let decoded = try ImageFile.read(URL(fileURLWithPath: path))
                return try decoded.resizedPlanes(channels: channels, size: settings.size, filter: settings.filter)
            } catch let error as ImageDataError {
                throw ImageDataError.badRow(manifest: manifest.path, line: row.line, column: column, file: relative,
                                            problem: error.description)
            }
        }
        let image = try one(row.image, files.0, column: imageColumn, channels: settings.imageChannels)
        let condition = try one(row.conditioning, files.1, column: conditioningColumn,
                                channels: settings.conditioningChannels)
        return (image, condition)
    }
}

/// POSIX realpath, or nil when the path does not resolve.
func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}
