// Which existing files a command may write over. `sample` and `eval` rewrite their own outputs on every run (a
// grid, a samples file, a JSON report), so an existing file of that kind is replaced; a file of another kind at
// the same path - another run's weights given as --out, a dataset manifest as --json - is refused before any work,
// naming the option. (export and make-dataset refuse any existing output unless --overwrite.)
import Foundation
import Model
import SafeTensors

public enum OutputKind: Sendable {
    /// A PNG image (its 8-byte signature).
    case png
    /// A JSON document (an object or an array).
    case json
    /// A samples file written by `sample --out`: safetensors with an `images` tensor and no weight format.
    case samples

    var name: String {
        switch self {
        case .png: return "a PNG image"
        case .json: return "a JSON report"
        case .samples: return "a samples file (sample --out)"
        }
    }

    /// Whether the file at `url` is of this kind.
    func matches(_ url: URL) -> Bool {
        switch self {
        case .png:
            guard let h = FileHandle(forReadingAtPath: url.path) else { return false }
            defer { try? h.close() }
            return h.readData(ofLength: 8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        case .json:
            guard let h = FileHandle(forReadingAtPath: url.path) else { return false }
            defer { try? h.close() }
            let head = h.readData(ofLength: 4096).drop { [0x20, 0x09, 0x0A, 0x0D].contains($0) }
            return head.first == UInt8(ascii: "{") || head.first == UInt8(ascii: "[")
        case .samples:
            guard let file = try? SafeTensorsFile(contentsOf: url) else { return false }
            return file.info("images") != nil && file.metadata[WeightFile.formatKey] == nil
        }
    }
}

public enum OutputReplacement {
    /// Refuses an existing regular file at an output path unless it is of the kind that option writes, or empty
    /// (nothing to lose: `mktemp` made it, say).
    public static func check(_ outputs: [(option: String, path: String, kind: OutputKind)]) throws {
        for out in outputs {
            var st = stat()
            guard stat(out.path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size > 0,
                  !out.kind.matches(URL(fileURLWithPath: out.path)) else { continue }
            throw OptionsError(option: out.option, message: "\(out.path) exists and is not \(out.kind.name), which is what \(out.option) writes; it would be replaced. Choose another path, or move the file away")
        }
    }
}
