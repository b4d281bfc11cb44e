// Reading image files for paired datasets: the decoded pixel buffer, format detection by signature (not by file
// extension, which datasets get wrong), and decoding through the system libraries (PNG.swift / PNGDecode.swift over
// libpng, JPEG.swift over libjpeg-turbo).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A decoded 8-bit image. pixels: (height, width, channels) interleaved; channels 1 gray, 2 gray + alpha, 3 RGB,
/// 4 RGBA (alpha not premultiplied).
public struct DecodedImage: Sendable, Equatable {
    public let width: Int, height: Int, channels: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

public enum ImageFormat: String, Sendable {
    case png = "PNG", jpeg = "JPEG"
}

public enum ImageFile {
    /// Larger images are refused before anything is allocated: Pillow's DecompressionBombError threshold
    /// (2 x 89,478,485 pixels), so a file diffusers would refuse is refused here too.
    public static let maxPixels = 178_956_970

    /// The format from the file's first bytes, or nil for anything else.
    public static func format(of bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        if bytes.count >= 8 && Array(bytes[0 ..< 8]) == PNG.signature { return .png }
        if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Decodes a PNG or JPEG held in memory; `path` names it in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> DecodedImage {
        switch format(of: bytes) {
        case .png: return try PNG.decodeImage(bytes, path: path)
        case .jpeg: return try JPEG.decodeImage(bytes, path: path)
        case nil:
            let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw ImageDataError.unsupportedImage(
                path: path, reason: "neither a PNG nor a JPEG (first bytes: \(head.isEmpty ? "none, empty file" : head))",
                fix: "Convert it to PNG or JPEG.")
        }
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try decode($0, path: path) }
    }

    /// Reads and decodes a file. A missing file, an unreadable one and a corrupt one are distinct errors.
    public static func read(_ url: URL) throws -> DecodedImage {
        let bytes = try readBytes(url.path)
        return try decode(bytes, path: url.path)
    }

    /// The whole file, through POSIX calls so that "missing" and "unreadable" can be told apart by errno.
    static func readBytes(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw ImageDataError.missingImage(path: path) }
            throw ImageDataError.unreadableImage(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ImageDataError.unreadableImage(path: path, reason: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ImageDataError.unreadableImage(path: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = 0
            while count < size {
                let n = Glibc.read(fd, buffer.baseAddress! + count, size - count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : 0; break }
                count += n
            }
        }
        guard bytes.count == size else {
            let reason = failure != 0 ? String(cString: strerror(failure)) : "the file shrank while being read"
            throw ImageDataError.unreadableImage(path: path, reason: reason)
        }
        return bytes
    }
}

/// A NUL-terminated C string held in a fixed-size buffer (libpng and TurboJPEG messages).
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
