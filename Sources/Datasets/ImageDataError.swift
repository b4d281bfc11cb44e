// Typed errors for image files and paired (image, condition, prompt) datasets: decoding, the manifest files
// (prompt.json / metadata.jsonl), paths, columns and the decode cache. Each message names the file, the manifest
// line (1-based) and the field at fault, and says what to do about it.
import Foundation

public enum ImageDataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// An image file that does not exist.
    case missingImage(path: String)
    /// An image file that exists but cannot be read (permissions, a directory...).
    case unreadableImage(path: String, reason: String)
    /// A PNG or JPEG that libpng / libjpeg-turbo rejects (corrupt, truncated...). `format` is "PNG" or "JPEG".
    case corruptImage(path: String, format: String, reason: String)
    /// A readable file this module does not decode (another format, CMYK JPEG, too many pixels).
    case unsupportedImage(path: String, reason: String, fix: String)
    /// A row of a paired dataset whose image or condition could not be used; `problem` is that error.
    case badRow(manifest: String, line: Int, column: String, file: String, problem: String)
    /// A path in a manifest that is absolute, contains "..", or resolves (through symlinks) outside the directory.
    case pathEscapes(manifest: String, line: Int, column: String, path: String, reason: String)
    /// A directory with both prompt.json and metadata.jsonl, or neither.
    case ambiguousLayout(directory: String, found: [String])
    case noLayout(directory: String)
    /// A manifest line that is not one JSON object.
    case badManifestLine(manifest: String, line: Int, reason: String)
    /// A requested column that the manifest's first row does not have; `present` lists the columns it has.
    case unknownColumn(manifest: String, role: String, column: String, present: [String])
    /// A row without the column (or with a value that is not a string).
    case badField(manifest: String, line: Int, column: String, reason: String)
    /// A manifest with no rows (or, with skipBad, no good rows).
    case emptyDataset(manifest: String, skipped: Int)
    /// A cache built with rows skipped, opened without skipBad.
    case skippedRows(manifest: String, count: Int, first: String)
    /// An argument outside what the operation supports.
    case invalidArgument(name: String, value: String, expected: String)
    /// The decode cache could not be written or mapped.
    case cacheFailure(path: String, reason: String, fix: String)

    public var description: String {
        switch self {
        case let .missingImage(path):
            return "\(path): image file not found. Check the path in the manifest (paths are relative to the "
                + "dataset directory)."
        case let .unreadableImage(path, reason):
            return "\(path): cannot read the image (\(reason)). Check that it is a readable file."
        case let .corruptImage(path, format, reason):
            return "\(path): corrupt or truncated \(format) (\(reason)). Re-export or re-download the file, or "
                + "pass --skip-bad-images to skip such rows."
        case let .unsupportedImage(path, reason, fix):
            return "\(path): \(reason). \(fix)"
        case let .badRow(manifest, line, column, file, problem):
            return "\(manifest), line \(line), \(column) '\(file)': \(problem)"
        case let .pathEscapes(manifest, line, column, path, reason):
            return "\(manifest), line \(line), \(column): the path '\(path)' \(reason). Paths must stay inside "
                + "the dataset directory: make them relative to it, without '..', and copy symlinked files in."
        case let .ambiguousLayout(directory, found):
            return "\(directory): holds both \(found.joined(separator: " and ")); a paired dataset has exactly one "
                + "of them (prompt.json: the fill50k layout; metadata.jsonl: the diffusers image-folder layout). "
                + "Move the other away."
        case let .noLayout(directory):
            return "\(directory): neither prompt.json (fill50k layout: {\"source\", \"target\", \"prompt\"} per "
                + "line) nor metadata.jsonl (diffusers image-folder layout: {\"file_name\", \"conditioning_image\", "
                + "\"text\"} per line) is there. Point at the directory that holds one of them."
        case let .badManifestLine(manifest, line, reason):
            return "\(manifest), line \(line): \(reason). Each non-empty line must be one JSON object."
        case let .unknownColumn(manifest, role, column, present):
            return "\(manifest): no column '\(column)' for the \(role); the rows have "
                + present.map { "'\($0)'" }.joined(separator: ", ") + ". Name one of these."
        case let .badField(manifest, line, column, reason):
            return "\(manifest), line \(line), column '\(column)': \(reason)."
        case let .emptyDataset(manifest, skipped):
            return "\(manifest): no usable rows" + (skipped > 0 ? " (\(skipped) skipped as bad)" : "")
                + ". A paired dataset needs at least one (image, condition, prompt) row."
        case let .skippedRows(manifest, count, first):
            return "\(manifest): \(count) rows are bad (first: \(first)). Fix them, or pass --skip-bad-images to train "
                + "without them."
        case let .invalidArgument(name, value, expected):
            return "\(name) = \(value) is not supported; expected \(expected)."
        case let .cacheFailure(path, reason, fix):
            return "\(path): decode cache: \(reason). \(fix)"
        }
    }
}
