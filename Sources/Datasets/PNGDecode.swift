// Reading back the PNGs this module writes (8-bit grayscale or RGB, non-interlaced, any row filters), with every
// chunk CRC checked: round-trip tests use it, and it can load hint images drawn elsewhere.
import CZlib
import Foundation

extension PNG {
    /// Decodes PNG bytes. Returns pixels: (height, width, channels), channels 1 (gray) or 3 (RGB).
    public static func decode(_ bytes: [UInt8], path: String = "(memory)") throws
        -> (pixels: [UInt8], width: Int, height: Int, channels: Int)
    {
        func fail(_ offset: Int, _ reason: String) -> DatasetError { .badPNG(path: path, offset: offset, reason: reason) }
        guard bytes.count >= 8, Array(bytes[0 ..< 8]) == signature else { throw fail(0, "missing PNG signature") }
        var at = 8
        var width = 0, height = 0, channels = 0
        var idat: [UInt8] = []
        var sawEnd = false
        while !sawEnd {
            guard at + 12 <= bytes.count else { throw fail(at, "chunk header runs past the end of the file") }
            let length = Int(be32(bytes, at))
            let type = String(decoding: bytes[at + 4 ..< at + 8], as: UTF8.self)
            guard at + 12 + length <= bytes.count else { throw fail(at, "\(type) chunk runs past the end of the file") }
            let crc = bytes.withUnsafeBufferPointer { crc32(crc32(0, nil, 0), $0.baseAddress! + at + 4, UInt32(4 + length)) }
            guard UInt32(crc) == be32(bytes, at + 8 + length) else { throw fail(at, "\(type) chunk CRC mismatch") }
            let data = Array(bytes[at + 8 ..< at + 8 + length])
            switch type {
            case "IHDR":
                guard length == 13 else { throw fail(at, "IHDR must be 13 bytes") }
                width = Int(be32(data, 0)); height = Int(be32(data, 4))
                guard data[8] == 8, data[10] == 0, data[11] == 0, data[12] == 0 else {
                    throw fail(at, "bit depth \(data[8]), interlace \(data[12]) not supported")
                }
                switch data[9] {
                case 0: channels = 1
                case 2: channels = 3
                default: throw fail(at, "color type \(data[9]) not supported")
                }
            case "IDAT": idat += data
            case "IEND": sawEnd = true
            default: break  // ancillary chunks are ignored
            }
            at += 12 + length
        }
        guard width > 0 && height > 0 && channels > 0 else { throw fail(8, "no IHDR chunk") }
        let rowBytes = width * channels
        var raw = [UInt8](repeating: 0, count: height * (rowBytes + 1))
        var rawSize = uLong(raw.count)
        let status = uncompress(&raw, &rawSize, idat, uLong(idat.count))
        guard status == Z_OK && Int(rawSize) == raw.count else {
            throw fail(8, "IDAT stream does not inflate to \(raw.count) bytes (zlib code \(status))")
        }
        var pixels = [UInt8](repeating: 0, count: height * rowBytes)
        for y in 0 ..< height {
            let filter = raw[y * (rowBytes + 1)]
            for k in 0 ..< rowBytes {
                let v = Int(raw[y * (rowBytes + 1) + 1 + k])
                let a = k >= channels ? Int(pixels[y * rowBytes + k - channels]) : 0
                let b = y > 0 ? Int(pixels[(y - 1) * rowBytes + k]) : 0
                let c = k >= channels && y > 0 ? Int(pixels[(y - 1) * rowBytes + k - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4: predictor = paeth(a, b, c)
                default: throw fail(8, "row \(y) has unknown filter type \(filter)")
                }
                pixels[y * rowBytes + k] = UInt8(truncatingIfNeeded: v + predictor)
            }
        }
        return (pixels, width, height, channels)
    }

    private static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
}
