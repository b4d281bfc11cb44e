// PNG decoding through the system libpng's simplified png_image API, which catches libpng's longjmp errors itself:
// a corrupt, truncated or CRC-damaged file is a typed error, never a crash. Every colour type and bit depth is read
// (gray 1/2/4/8/16, gray + alpha, RGB 8/16, RGBA, palette with or without tRNS, Adam7 interlaced) as 8-bit samples.
import CPNG
import CZlib
import Foundation

extension PNG {
    /// Decodes PNG bytes. Returns pixels: (height, width, channels), channels 1 (gray), 2 (gray + alpha),
    /// 3 (RGB) or 4 (RGBA), as the file holds them (palettes become RGB, or RGBA with tRNS).
    public static func decode(_ bytes: [UInt8], path: String = "(memory)") throws
        -> (pixels: [UInt8], width: Int, height: Int, channels: Int)
    {
        do {
            let image = try bytes.withUnsafeBytes { try decodeImage($0, path: path) }
            return (image.pixels, image.width, image.height, image.channels)
        } catch let error as ImageDataError {
            // This older entry point keeps its DatasetError contract.
            if case let .corruptImage(_, _, reason) = error {
                throw DatasetError.badPNG(path: path, offset: firstBadChunk(bytes)?.offset ?? 0, reason: reason)
            }
            throw DatasetError.badPNG(path: path, offset: 0, reason: error.description)
        }
    }

    /// Decodes PNG bytes to 8-bit samples. What libpng does beyond unpacking, and how it compares with Pillow
    /// (which diffusers uses):
    /// - gray 1/2/4-bit is scaled to 0...255 (x255, x85, x17), as Pillow does;
    /// - 16-bit samples are rounded to 8 bits (v / 257, rounded); Pillow truncates (v >> 8), so they can differ by
    ///   one level. 16-bit files are taken as sRGB-encoded unless they carry a gAMA/sRGB chunk;
    /// - a gAMA chunk other than sRGB's is applied (libpng converts to sRGB); Pillow ignores it;
    /// - tRNS (palette or single-colour) becomes an alpha channel, as Pillow's "RGBA"/"LA" modes.
    static func decodeImage(_ bytes: UnsafeRawBufferPointer, path: String) throws -> DecodedImage {
        // libpng inflates a chunk before it checks the chunk's CRC, so damage inside IDAT surfaces as a zlib error;
        // checking every CRC first names what is actually wrong, and where.
        if let bad = firstBadChunk(bytes) {
            throw ImageDataError.corruptImage(path: path, format: "PNG", reason: bad.reason)
        }
        var image = png_image()
        guard cpng_begin_read(&image, bytes.baseAddress, bytes.count) != 0 else {
            throw ImageDataError.corruptImage(path: path, format: "PNG", reason: "libpng: " + message(image))
        }
        let width = Int(image.width), height = Int(image.height)
        guard width * height <= ImageFile.maxPixels else {
            cpng_abandon(&image)
            throw ImageDataError.unsupportedImage(
                path: path, reason: "\(width)x\(height) pixels is more than the \(ImageFile.maxPixels) allowed",
                fix: "Downscale the image first.")
        }
        let color = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let alpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        let channels = (color ? 3 : 1) + (alpha ? 1 : 0)
        let count = width * height * channels
        var ok: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            ok = cpng_finish_read(&image, pngFormat(channels: channels), buffer.baseAddress)
            initialized = count  // on failure the array is discarded below
        }
        guard ok != 0 else {
            throw ImageDataError.corruptImage(path: path, format: "PNG", reason: "libpng: " + message(image))
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The first chunk whose CRC does not match, or that runs past the end of the data (walking from the
    /// signature to IEND); nil when all are sound, leaving everything else to libpng.
    static func firstBadChunk(_ bytes: UnsafeRawBufferPointer) -> (offset: Int, reason: String)? {
        guard bytes.count >= 8, let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        func be32(_ at: Int) -> UInt32 {
            UInt32(base[at]) << 24 | UInt32(base[at + 1]) << 16 | UInt32(base[at + 2]) << 8 | UInt32(base[at + 3])
        }
        var at = 8
        while at + 12 <= bytes.count {
            let length = Int(be32(at))
            let type = String(decoding: UnsafeBufferPointer(start: base + at + 4, count: 4), as: UTF8.self)
            guard length <= bytes.count - at - 12 else {
                return (at, "the \(type) chunk at byte offset \(at) runs past the end of the file (truncated)")
            }
            let crc = crc32(crc32(0, nil, 0), base + at + 4, UInt32(4 + length))
            if UInt32(crc) != be32(at + 8 + length) {
                return (at, "\(type) chunk CRC mismatch at byte offset \(at) (the file is damaged)")
            }
            if type == "IEND" { return nil }
            at += 12 + length
        }
        return nil  // truncated before IEND: libpng says what is missing
    }

    static func firstBadChunk(_ bytes: [UInt8]) -> (offset: Int, reason: String)? {
        bytes.withUnsafeBytes { firstBadChunk($0) }
    }

    private static func message(_ image: png_image) -> String {
        var copy = image
        return String(cString: cpng_message(&copy))
    }
}
