// Paired training data from a directory: (image, condition image, prompt) rows in one of two layouts, detected from
// the manifest present:
// - fill50k (the ControlNet tutorial dataset): DIR/prompt.json, one JSON object per line,
//   {"source": "source/0.png", "target": "target/0.png", "prompt": "..."}; source = the condition, target = the image;
// - diffusers image-folder (train_controlnet.py --train_data_dir): DIR/metadata.jsonl, one JSON object per line with
//   "file_name" (the image), "conditioning_image" and "text"; other column names can be chosen (diffusers'
//   --image_column, --conditioning_image_column, --caption_column). "image" names "file_name" there, as the
//   image-folder loader exposes file_name as the image column (diffusers' default --image_column is "image").
// open() parses the manifest and checks columns and paths lexically; PairedDatasetFiles.swift resolves the files
// (symlinks included) and PairedDatasetCache.swift decodes them once into a memory-mapped cache.
import Foundation
import SafeTensors

public struct PairedDataset: Sendable {
    public enum Layout: String, Sendable {
        case fill50k = "prompt.json"
        case imageFolder = "metadata.jsonl"

        /// Default (image, conditioning, caption) columns.
        public var defaultColumns: (image: String, conditioning: String, caption: String) {
            switch self {
            case .fill50k: return ("target", "source", "prompt")
            case .imageFolder: return ("file_name", "conditioning_image", "text")
            }
        }
    }

    /// One manifest row: paths relative to the directory, and the prompt ("" = none).
    public struct Row: Sendable, Equatable {
        /// 1-based line number in the manifest.
        public let line: Int
        public let image: String
        public let conditioning: String
        public let prompt: String
    }

    public let directory: URL
    public let layout: Layout
    /// DIR/prompt.json or DIR/metadata.jsonl.
    public let manifest: URL
    public let imageColumn: String, conditioningColumn: String, captionColumn: String
    public let rows: [Row]

    /// Reads the manifest of `directory` (or of the directory holding `directory`, when that is the prompt.json or
    /// metadata.jsonl file itself). Columns default to the layout's (see Layout.defaultColumns); a column the
    /// rows do not have is refused, listing the ones they have. Paths that are absolute or contain ".." are refused
    /// naming the row; files are not touched yet (see PairedDataset.load).
    public static func open(directory: URL, imageColumn: String? = nil, conditioningColumn: String? = nil,
                            captionColumn: String? = nil) throws -> PairedDataset {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        // The manifest itself names its directory.
        if Layout(rawValue: directory.lastPathComponent) != nil,
           fm.fileExists(atPath: directory.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return try open(directory: directory.deletingLastPathComponent(), imageColumn: imageColumn,
                            conditioningColumn: conditioningColumn, captionColumn: captionColumn)
        }
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError.missingFile(path: directory.path,
                                           fix: "Pass the directory holding prompt.json or metadata.jsonl.")
        }
        let present = [Layout.fill50k, .imageFolder].filter {
            fm.fileExists(atPath: directory.appendingPathComponent($0.rawValue).path)
        }
        guard present.count <= 1 else {
            throw ImageDataError.ambiguousLayout(directory: directory.path, found: present.map(\.rawValue))
        }
        guard let layout = present.first else { throw ImageDataError.noLayout(directory: directory.path) }
        let manifest = directory.appendingPathComponent(layout.rawValue)
        let objects = try readJSONLines(manifest)
        guard let first = objects.first else { throw ImageDataError.emptyDataset(manifest: manifest.path, skipped: 0) }

        let columnsPresent = first.object.keys.sorted()
        let defaults = layout.defaultColumns
        func resolve(_ requested: String?, _ fallback: String, role: String) throws -> String {
            let name = requested ?? fallback
            if first.object[name] != nil { return name }
            if layout == .imageFolder && name == "image" && first.object["file_name"] != nil { return "file_name" }
            throw ImageDataError.unknownColumn(manifest: manifest.path, role: role, column: name,
                                               present: columnsPresent)
        }
        let image = try resolve(imageColumn, defaults.image, role: "image (--image-column)")
        let conditioning = try resolve(conditioningColumn, defaults.conditioning,
                                       role: "condition image (--conditioning-image-column)")
        let caption = try resolve(captionColumn, defaults.caption, role: "prompt (--caption-column)")

        var rows: [Row] = []
        rows.reserveCapacity(objects.count)
        for (line, object) in objects {
            func string(_ column: String) throws -> String {
                guard let value = object[column] else {
                    throw ImageDataError.badField(manifest: manifest.path, line: line, column: column,
                                                  reason: "missing (the first row has it)")
                }
                guard let text = value as? String else {
                    throw ImageDataError.badField(manifest: manifest.path, line: line, column: column,
                                                  reason: "\(value) is not a string")
                }
                return text
            }
            func path(_ column: String) throws -> String {
                let p = try string(column)
                try checkRelative(p, manifest: manifest.path, line: line, column: column)
                return p
            }
            rows.append(Row(line: line, image: try path(image), conditioning: try path(conditioning),
                            prompt: try string(caption)))
        }
        return PairedDataset(directory: directory, layout: layout, manifest: manifest, imageColumn: image,
                             conditioningColumn: conditioning, captionColumn: caption, rows: rows)
    }

    /// Refuses paths that leave the directory on their face: empty, holding NUL, absolute, or with a ".." component. (Symlinks
    /// are checked when the files are resolved.)
    static func checkRelative(_ path: String, manifest: String, line: Int, column: String) throws {
        if path.isEmpty {
            throw ImageDataError.badField(manifest: manifest, line: line, column: column, reason: "the path is empty")
        }
        // A file name cannot hold NUL: the C calls would read "a.png\0.bak" as "a.png", another file than named.
        if path.utf8.contains(0) {
            throw ImageDataError.badField(manifest: manifest, line: line, column: column,
                                          reason: "the path holds a NUL character (\(path.debugDescription)), which no file name can")
        }
        if path.hasPrefix("/") {
            throw ImageDataError.pathEscapes(manifest: manifest, line: line, column: column, path: path,
                                             reason: "is absolute")
        }
        if path.split(separator: "/", omittingEmptySubsequences: true).contains("..") {
            throw ImageDataError.pathEscapes(manifest: manifest, line: line, column: column, path: path,
                                             reason: "contains '..'")
        }
    }

    /// The non-blank lines of a JSON-lines file as (1-based line number, object).
    static func readJSONLines(_ url: URL) throws -> [(line: Int, object: [String: Any])] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw DatasetError.unreadable(path: url.path, reason: FileReadFailure.reason(url, error))
        }
        var result: [(Int, [String: Any])] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let parsed: Any
            do {
                parsed = try JSONSerialization.jsonObject(with: Data(line), options: [])
            } catch {
                throw ImageDataError.badManifestLine(manifest: url.path, line: lineNumber,
                                                     reason: "not valid JSON (\(jsonErrorSummary(error)))")
            }
            guard let object = parsed as? [String: Any] else {
                throw ImageDataError.badManifestLine(manifest: url.path, line: lineNumber,
                                                     reason: "a JSON \(type(of: parsed)), not an object")
            }
            result.append((lineNumber, object))
        }
        return result
    }

    private static func jsonErrorSummary(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }
}
