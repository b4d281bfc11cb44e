// Whole-file gzip I/O through the system zlib. Reads go through gzread, which inflates .gz files and passes other
// files through unchanged, so every loader accepts both compressed and raw files.
import CZlib
import Foundation

public enum Gzip {
    /// The (decompressed) contents of `url`. A missing file throws `missingFile` carrying `fixIfMissing`.
    public static func read(_ url: URL, fixIfMissing: String = "Check the path.") throws -> [UInt8] {
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
        while true {
            let got = Int(gzread(file, scratch, UInt32(chunk)))
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
