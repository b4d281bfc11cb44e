// Whole-file gzip I/O through the system zlib. Reads go through gzread, which inflates .gz files and passes other
// files through unchanged, so every loader accepts both compressed and raw files.
import CZlib
import Foundation

public enum Gzip {
    /// The most any read may inflate to without a format's own limit: a quarter of physical memory, at most 8 GiB.
    /// (A 2 MB gzip bomb inflates to 2 GiB; stopping at a cap refuses it before it can exhaust the machine.)
    public static var defaultLimit: Int {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        return min(physical / 4, 8 << 30)
    }

    /// The (decompressed) contents of `url`, refused past `limit` bytes; `limit` may depend on the first
    /// `headerBytes` bytes (formats whose header declares the size cap the read at what it declares, plus one
    /// byte so that trailing data is still noticed). A missing file throws `missingFile` carrying `fixIfMissing`.
    public static func read(_ url: URL, fixIfMissing: String = "Check the path.", headerBytes: Int = 0,
                            limit: ([UInt8]) throws -> Int = { _ in Gzip.defaultLimit }) throws -> [UInt8] {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatasetError.missingFile(path: path, fix: fixIfMissing)
        }
        if isDirectory.boolValue { throw DatasetError.unreadable(path: path, reason: "it is a directory") }
        guard let file = gzopen(path, "rb") else {
            throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { gzclose_r(file) }
        _ = gzbuffer(file, 1 << 17)

        var bytes: [UInt8] = []
        let chunk = 1 << 20
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { scratch.deallocate() }
        var cap = headerBytes > 0 ? headerBytes : try limit([])
        var capped = headerBytes > 0
        while true {
            let want = max(0, min(chunk, cap - bytes.count))
            if want == 0 {
                if capped { cap = try limit(bytes); capped = false; continue }
                // At the cap: one more byte means the data is larger than allowed.
                var probe: UInt8 = 0
                if gzread(file, &probe, 1) > 0 {
                    throw DatasetError.tooLarge(path: path, limit: cap)
                }
                break
            }
            let got = Int(gzread(file, scratch, UInt32(want)))
            if got < 0 {
                throw DatasetError.corruptGzip(path: path, decompressedBytes: bytes.count, reason: errorText(file))
            }
            if got == 0 { break }
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: got))
        }
        // A gzip stream cut short reads as a clean end; only gzerror tells (Z_BUF_ERROR).
        var code: Int32 = 0
        _ = gzerror(file, &code)
        if code != Z_OK && code != Z_STREAM_END {
            throw DatasetError.corruptGzip(path: path, decompressedBytes: bytes.count, reason: errorText(file))
        }
        return bytes
    }

    private static func errorText(_ file: gzFile) -> String {
        var code: Int32 = 0
        guard let message = gzerror(file, &code) else { return "zlib error \(code)" }
        return String(cString: message)
    }

    /// Writes `bytes` gzip-compressed (level 9) to `url`, replacing it.
    public static func write(_ bytes: [UInt8], to url: URL) throws {
        guard let file = gzopen(url.path, "wb9") else {
            throw DatasetError.cannotWrite(path: url.path, reason: String(cString: strerror(errno)))
        }
        var offset = 0
        while offset < bytes.count {
            let len = min(bytes.count - offset, 1 << 30)
            let wrote = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress! + offset, UInt32(len)) }
            if wrote <= 0 {
                let reason = errorText(file)
                gzclose_w(file)
                throw DatasetError.cannotWrite(path: url.path, reason: reason)
            }
            offset += Int(wrote)
        }
        let status = gzclose_w(file)
        if status != Z_OK { throw DatasetError.cannotWrite(path: url.path, reason: "gzclose failed with code \(status)") }
    }
}
