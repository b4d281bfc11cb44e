// JPEG decoding (baseline and progressive, gray and colour) through the system libjpeg-turbo's TurboJPEG API,
// which catches libjpeg's longjmp errors itself; and encoding, for tests and generated data.
import CTurboJPEG
import Foundation

public enum JPEG {
    /// libjpeg's JWRN_JPEG_EOF text (unchanged since libjpeg 6): the data ended before the image did.
    static let truncationWarning = "Premature end of JPEG file"

    /// Decodes JPEG bytes to 8-bit gray (1 channel, for grayscale files) or RGB (3 channels). Like Pillow (and so
    /// diffusers): the accurate integer IDCT, fancy upsampling, no EXIF orientation applied; a file cut short is an
    /// error (libjpeg would pad it with gray), other libjpeg warnings are not. CMYK/YCCK files are refused: their
    /// conversion to RGB needs a colour profile.
    static func decodeImage(_ bytes: UnsafeRawBufferPointer, path: String) throws -> DecodedImage {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            throw ImageDataError.corruptImage(path: path, format: "JPEG", reason: "empty file")
        }
        var message = [CChar](repeating: 0, count: 256)
        var width: Int32 = 0, height: Int32 = 0, colorspace: Int32 = 0
        guard cjpeg_read_header(base, bytes.count, &width, &height, &colorspace, &message) == 0 else {
            throw ImageDataError.corruptImage(path: path, format: "JPEG", reason: "libjpeg: " + cString(message))
        }
        let w = Int(width), h = Int(height)
        guard w * h <= ImageFile.maxPixels else {
            throw ImageDataError.unsupportedImage(
                path: path, reason: "\(w)x\(h) pixels is more than the \(ImageFile.maxPixels) allowed",
                fix: "Downscale the image first.")
        }
        if colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue) {
            throw ImageDataError.unsupportedImage(
                path: path, reason: "a CMYK JPEG (print colours)",
                fix: "Convert it to RGB first, e.g. `convert in.jpg -colorspace sRGB out.jpg`.")
        }
        let gray = colorspace == Int32(TJCS_GRAY.rawValue)
        let channels = gray ? 1 : 3
        let count = w * h * channels
        var status: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            status = cjpeg_decode(base, bytes.count, buffer.baseAddress, width, height,
                                  Int32(gray ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue), &message)
            initialized = count  // discarded below unless the decode succeeded
        }
        // Warnings: a file cut short is an error (Pillow raises "image file is truncated"); libjpeg's other warnings
        // (e.g. "Corrupt JPEG data: 2 extraneous bytes before marker") leave a complete image, which Pillow accepts.
        let truncated = status == 1 && cString(message).hasPrefix(truncationWarning)
        guard status == 0 || (status == 1 && !truncated) else {
            throw ImageDataError.corruptImage(path: path, format: "JPEG", reason: "libjpeg: " + cString(message))
        }
        return DecodedImage(width: w, height: h, channels: channels, pixels: pixels)
    }

    /// JPEG file bytes for 8-bit pixels: (height, width, channels), channels 1 (gray) or 3 (RGB); 4:2:0 chroma
    /// subsampling for colour. `progressive` writes a progressive file instead of a baseline one.
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int, quality: Int = 90,
                              progressive: Bool = false) throws -> [UInt8] {
        func fail(_ reason: String) -> DatasetError { .cannotWrite(path: "(JPEG in memory)", reason: reason) }
        guard channels == 1 || channels == 3 else { throw fail("JPEG channels must be 1 or 3, not \(channels)") }
        guard width > 0 && height > 0 && width * height * channels == pixels.count else {
            throw fail("\(pixels.count) pixel bytes for a \(width)x\(height)x\(channels) image")
        }
        guard let handle = tjInitCompress() else { throw fail("tjInitCompress failed") }
        defer { tjDestroy(handle) }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let format = Int32(channels == 1 ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue)
        let subsampling = Int32(channels == 1 ? TJSAMP_GRAY.rawValue : TJSAMP_420.rawValue)
        let flags = TJFLAG_ACCURATEDCT | (progressive ? TJFLAG_PROGRESSIVE : 0)
        let status = tjCompress2(handle, pixels, Int32(width), 0, Int32(height), format, &out, &size, subsampling,
                                 Int32(max(1, min(100, quality))), Int32(flags))
        defer { if let out { tjFree(out) } }
        guard status == 0, let out else { throw fail("libjpeg: " + String(cString: tjGetErrorStr2(handle))) }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }
}
