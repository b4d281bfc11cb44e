// PNG encoding (8-bit grayscale and RGB, non-interlaced) over the system zlib: compress2 for the IDAT stream and
// crc32 for the chunk checksums. Each row gets the filter (None/Sub/Up/Paeth) with the smallest sum of absolute
// filtered bytes, the usual heuristic, which keeps grids and plots small.
import CZlib
import Foundation

public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// gray: (height, width) uint8.
    public static func write(gray: [UInt8], width: Int, height: Int, to url: URL) throws {
        try save(encode(pixels: gray, width: width, height: height, channels: 1), to: url)
    }

    /// rgb: (height, width, 3) uint8, interleaved.
    public static func write(rgb: [UInt8], width: Int, height: Int, to url: URL) throws {
        try save(encode(pixels: rgb, width: width, height: height, channels: 3), to: url)
    }

    /// The PNG file bytes. pixels: (height, width, channels) with channels 1 (gray) or 3 (RGB).
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> [UInt8] {
        precondition(channels == 1 || channels == 3, "PNG channels must be 1 (gray) or 3 (RGB)")
        precondition(width > 0 && height > 0, "PNG dimensions must be positive")
        precondition(pixels.count == width * height * channels, "pixels must hold width*height*channels bytes")
        let rowBytes = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity(height * (rowBytes + 1))
        var previous = [UInt8](repeating: 0, count: rowBytes)
        for y in 0 ..< height {
            let row = Array(pixels[y * rowBytes ..< (y + 1) * rowBytes])
            let (filter, filtered) = bestFilter(row, previous: previous, bpp: channels)
            raw.append(filter)
            raw += filtered
            previous = row
        }
        var compressedSize = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
        let status = compress2(&compressed, &compressedSize, raw, uLong(raw.count), 9)
        guard status == Z_OK else {
            throw DatasetError.cannotWrite(path: "(PNG in memory)", reason: "zlib compress2 failed with code \(status)")
        }
        compressed.removeSubrange(Int(compressedSize)...)

        var header = be32(UInt32(width)) + be32(UInt32(height))
        header += [8, channels == 1 ? 0 : 2, 0, 0, 0]  // bit depth 8, color type, deflate, adaptive filters, no interlace
        return signature + chunk("IHDR", header) + chunk("IDAT", compressed) + chunk("IEND", [])
    }

    private static func save(_ bytes: [UInt8], to url: URL) throws {
        do {
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw DatasetError.cannotWrite(path: url.path, reason: error.localizedDescription)
        }
    }

    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        let body = typeBytes + data
        let crc = body.withUnsafeBufferPointer { crc32(crc32(0, nil, 0), $0.baseAddress, UInt32($0.count)) }
        return be32(UInt32(data.count)) + body + be32(UInt32(crc))
    }

    private static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    /// Filters one row every way and keeps the one with the least total |signed byte|.
    private static func bestFilter(_ row: [UInt8], previous: [UInt8], bpp: Int) -> (UInt8, [UInt8]) {
        var best: (UInt8, [UInt8]) = (0, row)
        var bestCost = Int.max
        for filter: UInt8 in [0, 1, 2, 4] {
            var out = [UInt8](repeating: 0, count: row.count)
            var cost = 0
            for k in 0 ..< row.count {
                let a = k >= bpp ? Int(row[k - bpp]) : 0
                let b = Int(previous[k])
                let c = k >= bpp ? Int(previous[k - bpp]) : 0
                let predictor: Int
                switch filter {
                case 1: predictor = a
                case 2: predictor = b
                case 4: predictor = paeth(a, b, c)
                default: predictor = 0
                }
                let v = UInt8(truncatingIfNeeded: Int(row[k]) - predictor)
                out[k] = v
                cost += v < 128 ? Int(v) : 256 - Int(v)
            }
            if cost < bestCost { bestCost = cost; best = (filter, out) }
        }
        return best
    }

    static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }
}
