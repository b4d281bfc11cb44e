// The IDX format of MNIST and Fashion-MNIST (gzipped or raw): big-endian headers, unsigned-byte payloads.
// Magic = 0x00 0x00 <type> <ndims>; type 0x08 is uint8; images have ndims 3 (N, H, W), labels ndims 1 (N).
import Foundation

public enum IDX {
    public static let imagesMagic: UInt32 = 0x0000_0803
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// Reads an idx3-ubyte images file. `expectedSize` (height, width), when given, is enforced.
    /// Returns pixels: (count, height, width) uint8.
    public static func readImages(_ url: URL, expectedSize: (height: Int, width: Int)? = nil,
                                  fixIfMissing: String = "Check the path.") throws
        -> (count: Int, height: Int, width: Int, pixels: [UInt8])
    {
        let bytes = try Gzip.read(url, fixIfMissing: fixIfMissing, headerBytes: 16) { try declaredSize($0, path: url.path) }
        return try parseImages(bytes, path: url.path, expectedSize: expectedSize)
    }

    /// Reads an idx1-ubyte labels file; labels above `maxLabel` (when given) are rejected. Returns labels: (count).
    public static func readLabels(_ url: URL, maxLabel: Int? = nil,
                                  fixIfMissing: String = "Check the path.") throws -> [Int32] {
        let bytes = try Gzip.read(url, fixIfMissing: fixIfMissing, headerBytes: 8) { try declaredSize($0, path: url.path) }
        return try parseLabels(bytes, path: url.path, maxLabel: maxLabel)
    }

    /// The file size an IDX header declares (header plus the product of its dimensions), plus 1 MiB so that
    /// modest trailing data is still reported exactly by the parser; a short or foreign header gets the header's
    /// size back and fails parsing.
    static func declaredSize(_ head: [UInt8], path: String) throws -> Int {
        guard head.count >= 4, head[0] == 0, head[1] == 0 else { return head.count }
        let ndims = Int(head[3])
        guard head.count >= 4 + 4 * ndims else { return head.count }
        var size = 1
        for d in 0..<ndims {
            let (product, overflow) = size.multipliedReportingOverflow(by: Int(be32(head, 4 + 4 * d)))
            guard !overflow, product <= Gzip.defaultLimit else { throw DatasetError.tooLarge(path: path, limit: Gzip.defaultLimit) }
            size = product
        }
        return 4 + 4 * ndims + size + (1 << 20)
    }

    static func parseImages(_ bytes: [UInt8], path: String, expectedSize: (height: Int, width: Int)?) throws
        -> (count: Int, height: Int, width: Int, pixels: [UInt8])
    {
        let dims = try header(bytes, path: path, magic: imagesMagic)
        let (count, height, width) = (dims[0], dims[1], dims[2])
        if count == 0 || height == 0 || width == 0 {
            throw DatasetError.wrongDimensions(path: path, offset: 4, found: dims, expected: "non-zero N x H x W")
        }
        if let e = expectedSize, e.height != height || e.width != width {
            throw DatasetError.wrongDimensions(path: path, offset: 8, found: [height, width],
                                               expected: "\(e.height)x\(e.width) images")
        }
        let start = 16
        let (perImage, o1) = height.multipliedReportingOverflow(by: width)
        let (payload, o2) = perImage.multipliedReportingOverflow(by: count)
        if o1 || o2 {
            throw DatasetError.wrongDimensions(path: path, offset: 4, found: dims, expected: "a size that fits in memory")
        }
        try checkSize(bytes.count, start: start, payload: payload, path: path, what: "pixel data")
        return (count, height, width, Array(bytes[start ..< start + payload]))
    }

    static func parseLabels(_ bytes: [UInt8], path: String, maxLabel: Int?) throws -> [Int32] {
        let dims = try header(bytes, path: path, magic: labelsMagic)
        let count = dims[0]
        if count == 0 {
            throw DatasetError.wrongDimensions(path: path, offset: 4, found: dims, expected: "at least one label")
        }
        let start = 8
        try checkSize(bytes.count, start: start, payload: count, path: path, what: "label data")
        var labels = [Int32](repeating: 0, count: count)
        for i in 0 ..< count {
            let v = Int(bytes[start + i])
            if let m = maxLabel, v > m {
                throw DatasetError.badLabel(path: path, offset: start + i, value: v, expected: "0...\(m)")
            }
            labels[i] = Int32(v)
        }
        return labels
    }

    /// Validates the magic and returns the header's dimensions.
    private static func header(_ bytes: [UInt8], path: String, magic: UInt32) throws -> [Int] {
        let ndims = Int(magic & 0xFF)
        let headerSize = 4 + 4 * ndims
        if bytes.count < 4 {
            throw DatasetError.truncated(path: path, offset: bytes.count, expectedSize: headerSize, what: "IDX magic")
        }
        let found = be32(bytes, 0)
        if found != magic { throw DatasetError.badMagic(path: path, offset: 0, found: found, expected: magic) }
        if bytes.count < headerSize {
            throw DatasetError.truncated(path: path, offset: bytes.count, expectedSize: headerSize, what: "IDX header")
        }
        return (0 ..< ndims).map { Int(be32(bytes, 4 + 4 * $0)) }
    }

    private static func checkSize(_ size: Int, start: Int, payload: Int, path: String, what: String) throws {
        if size < start + payload {
            throw DatasetError.truncated(path: path, offset: size, expectedSize: start + payload, what: what)
        }
        if size > start + payload {
            throw DatasetError.trailingBytes(path: path, offset: start + payload, extra: size - start - payload)
        }
    }

    private static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    /// The bytes of an IDX images file (the inverse of `readImages`), for tests and tools that write datasets.
    /// pixels: (count, height, width).
    public static func encodeImages(_ pixels: [UInt8], count: Int, height: Int, width: Int) -> [UInt8] {
        precondition(pixels.count == count * height * width, "pixels must hold count*height*width bytes")
        return bigEndian([imagesMagic, UInt32(count), UInt32(height), UInt32(width)]) + pixels
    }

    /// The bytes of an IDX labels file (labels 0...255). labels: (count).
    public static func encodeLabels(_ labels: [Int32]) -> [UInt8] {
        precondition(labels.allSatisfy { (0 ... 255).contains($0) }, "IDX ubyte labels must be 0...255")
        return bigEndian([labelsMagic, UInt32(labels.count)]) + labels.map { UInt8($0) }
    }

    private static func bigEndian(_ words: [UInt32]) -> [UInt8] {
        words.flatMap { w in [UInt8(w >> 24), UInt8(w >> 16 & 0xFF), UInt8(w >> 8 & 0xFF), UInt8(w & 0xFF)] }
    }
}
