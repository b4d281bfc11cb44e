// PNG encoding through the system libpng (its simplified png_image write API: 8-bit gray, gray + alpha, RGB or
// RGBA, non-interlaced, libpng's default adaptive filtering and zlib level). Files are written atomically (a
// temporary file in the same directory, then rename) so a reader never sees half a PNG.
import CPNG
import Foundation

public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// gray: (height, width) uint8.
    public static func write(gray: [UInt8], width: Int, height: Int, to url: URL) throws {
        try save(encode(pixels: gray, width: width, height: height, channels: 1, path: url.path), to: url)
    }

    /// rgb: (height, width, 3) uint8, interleaved.
    public static func write(rgb: [UInt8], width: Int, height: Int, to url: URL) throws {
        try save(encode(pixels: rgb, width: width, height: height, channels: 3, path: url.path), to: url)
    }

    /// pixels: (height, width, channels) uint8 interleaved, channels 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA).
    public static func write(pixels: [UInt8], width: Int, height: Int, channels: Int, to url: URL) throws {
        try save(encode(pixels: pixels, width: width, height: height, channels: channels, path: url.path), to: url)
    }

    /// The PNG file bytes. pixels: (height, width, channels) with channels 1 (gray), 2 (gray + alpha), 3 (RGB) or
    /// 4 (RGBA).
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> [UInt8] {
        try encode(pixels: pixels, width: width, height: height, channels: channels, path: "(PNG in memory)")
    }

    static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int, path: String) throws -> [UInt8] {
        func fail(_ reason: String) -> DatasetError { .cannotWrite(path: path, reason: reason) }
        guard (1 ... 4).contains(channels) else { throw fail("PNG channels must be 1...4, not \(channels)") }
        guard width > 0 && height > 0 && width <= Int(Int32.max) && height <= Int(Int32.max) else {
            throw fail("PNG dimensions must be positive, not \(width)x\(height)")
        }
        guard pixels.count == width * height * channels else {
            throw fail("\(pixels.count) pixel bytes for a \(width)x\(height)x\(channels) image")
        }
        let format = pngFormat(channels: channels)
        let bound = cpng_encoded_size_bound(UInt32(width), UInt32(height), format)
        var size = bound
        var message = [CChar](repeating: 0, count: 64)
        let bytes = [UInt8](unsafeUninitializedCapacity: bound) { out, count in
            let ok = pixels.withUnsafeBytes { src in
                cpng_encode(UInt32(width), UInt32(height), format, src.baseAddress, out.baseAddress, &size, &message)
            }
            count = ok != 0 ? size : 0
        }
        guard !bytes.isEmpty else { throw fail("libpng: " + cString(message)) }
        return bytes
    }

    /// libpng's simplified-API format for 8-bit samples with this many channels.
    static func pngFormat(channels: Int) -> UInt32 {
        (channels >= 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (channels % 2 == 0 ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
    }

    private static func save(_ bytes: [UInt8], to url: URL) throws {
        // A temporary file beside the target, renamed over it when complete; errors name the file.
        try FileOutput.write(bytes, to: url)
    }
}
