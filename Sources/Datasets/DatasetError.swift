// Typed errors for everything the Datasets module reads or writes. Each message names the file and the byte
// offset or line at fault, and says what to do about it.
import Foundation

public enum DatasetError: Error, CustomStringConvertible, Equatable {
    /// A named dataset's file is absent.
    case missingFile(path: String, fix: String)
    /// The file exists but could not be opened or read (permissions, a directory...).
    case unreadable(path: String, reason: String)
    /// A gzip file whose compressed stream is corrupt or cut short.
    case corruptGzip(path: String, decompressedBytes: Int, reason: String)
    /// An IDX file whose 4-byte magic is not 0x00 0x00 <type 0x08> <ndims>.
    case badMagic(path: String, offset: Int, found: UInt32, expected: UInt32)
    /// Fewer bytes than the header promises; `offset` is where the file ends, inside `what`.
    case truncated(path: String, offset: Int, expectedSize: Int, what: String)
    /// More bytes than the header promises (usually a wrong header or two files concatenated).
    case trailingBytes(path: String, offset: Int, extra: Int)
    /// A dimension that is zero, or not what a named dataset requires.
    case wrongDimensions(path: String, offset: Int, found: [Int], expected: String)
    /// Images and labels files disagree on the number of samples.
    case countMismatch(imagesPath: String, images: Int, labelsPath: String, labels: Int)
    /// A CSV field that is not an integer in range.
    case badCSVField(path: String, line: Int, column: Int, text: String, expected: String)
    /// A CSV row with the wrong number of fields.
    case badCSVRow(path: String, line: Int, fields: Int, expected: Int)
    /// A label outside what the dataset defines.
    case badLabel(path: String, offset: Int, value: Int, expected: String)
    /// `DatasetCatalog.load` was given something that is neither a known name nor an existing file.
    case unknownDataset(name: String)
    /// A file (PNG, hint cache) that could not be written.
    case cannotWrite(path: String, reason: String)
    /// A cache file whose header does not match what it should hold.
    case staleCache(path: String, reason: String)
    /// A PNG that libpng cannot read (corrupt or truncated).
    case badPNG(path: String, offset: Int, reason: String)
    /// A split that a path-based dataset cannot provide.
    case missingSplit(path: String, split: String, fix: String)
    /// Data that inflates past what its header declares (or past the general cap): e.g. a gzip bomb.
    case tooLarge(path: String, limit: Int)
    /// A dataset whose images do not have the shape the model needs.
    case shapeMismatch(dataset: String, found: String, expected: String, fix: String)

    public var description: String {
        switch self {
        case let .missingFile(path, fix):
            return "\(path): file not found. \(fix)"
        case let .unreadable(path, reason):
            return "\(path): cannot read the file (\(reason)). Check that it exists and is a readable file."
        case let .corruptGzip(path, n, reason):
            return "\(path): the gzip stream is corrupt or truncated after \(n) decompressed bytes (\(reason)). "
                + "Re-download the file."
        case let .badMagic(path, offset, found, expected):
            return "\(path): bad IDX magic at byte offset \(offset): found 0x\(hex8(found)), expected "
                + "0x\(hex8(expected)). Is this the right file (images idx3-ubyte vs labels idx1-ubyte)?" + offsetNote(path)
        case let .truncated(path, offset, expectedSize, what):
            return "\(path): truncated: the data ends at byte offset \(offset), inside the \(what), but the header "
                + "promises \(expectedSize) bytes. The file is incomplete; re-download it." + offsetNote(path)
        case let .trailingBytes(path, offset, extra):
            return "\(path): \(extra) unexpected bytes after the data, starting at byte offset \(offset). "
                + "The header's counts do not match the file size." + offsetNote(path)
        case let .wrongDimensions(path, offset, found, expected):
            return "\(path): wrong dimensions \(found.map(String.init).joined(separator: "x")) in the header at "
                + "byte offset \(offset); expected \(expected)." + offsetNote(path)
        case let .countMismatch(imagesPath, images, labelsPath, labels):
            return "\(imagesPath) holds \(images) images but \(labelsPath) holds \(labels) labels; "
                + "pair each images file with its own labels file."
        case let .badCSVField(path, line, column, text, expected):
            return "\(path): line \(line), field \(column): '\(text)' is not \(expected). "
                + "Each row must be the integer pixels 0...255 then an integer label."
        case let .badCSVRow(path, line, fields, expected):
            return "\(path): line \(line) has \(fields) fields, expected \(expected) (pixels then the label)."
        case let .badLabel(path, offset, value, expected):
            return "\(path): label \(value) at byte offset \(offset) is out of range; expected \(expected)." + offsetNote(path)
        case let .unknownDataset(name):
            return "unknown dataset '\(name)': use \"mnist5k\", \"fashion\", or the path of an existing IDX images "
                + "file (*-images-idx3-ubyte[.gz]) or .csv/.csv.gz file."
        case let .cannotWrite(path, reason):
            return "\(path): cannot write the file (\(reason)). Check that the directory exists and is writable."
        case let .staleCache(path, reason):
            return "\(path): hint cache does not match (\(reason)). Delete the file; it is rebuilt on the next run."
        case let .badPNG(path, offset, reason):
            return "\(path): unreadable PNG at byte offset \(offset): \(reason). Re-export or re-download it."
        case let .missingSplit(path, split, fix):
            return "\(path): no \(split) split. \(fix)"
        case let .tooLarge(path, limit):
            return "\(path): the data is larger than the \(limit) bytes (\(limit >> 20) MiB) its header declares or this "
                + "reader takes for its format; the file is corrupt or not what it claims to be (a gzip bomb?). "
                + "Check the file; a dataset really this large belongs in IDX files or a paired-data directory."
        case let .shapeMismatch(dataset, found, expected, fix):
            return "\(dataset) has \(found) images but the model expects \(expected). \(fix)"
        }
    }
}

/// Offsets in .gz files count decompressed bytes; say so, since `xxd` on the file would show something else.
private func offsetNote(_ path: String) -> String {
    path.hasSuffix(".gz") ? " (Offsets count decompressed bytes.)" : ""
}

private func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}
