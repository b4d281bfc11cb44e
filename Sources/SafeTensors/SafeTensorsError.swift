// Everything that can go wrong reading or writing a safetensors file, each naming the file and tensor at fault.
import Foundation

public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read at all.
    case unreadable(file: String, reason: String)
    /// The file ends before the bytes its length prefix or header promise. `tensor` is the first tensor cut off.
    case truncated(file: String, tensor: String?, size: Int, needed: Int)
    /// The header is not a JSON object of the expected form; `tensor` is the entry at fault, if any.
    case badHeader(file: String, tensor: String?, reason: String)
    /// A tensor's data lies (partly) outside the data section.
    case offsetOutOfRange(file: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// Two tensors share bytes.
    case overlap(file: String, tensor: String, other: String)
    /// A dtype this module does not handle (e.g. BF16), or not the one the caller asked for.
    case unsupportedDType(file: String, tensor: String, dtype: String, supported: [String])
    /// The tensor's dtype is valid but not one the accessor reads (e.g. `floats` of an I64 tensor).
    case wrongDType(file: String, tensor: String, dtype: String, expected: [String])
    /// The byte range does not hold exactly shape.product * dtype.size bytes.
    case sizeMismatch(file: String, tensor: String, shape: [Int], dtype: String, byteCount: Int)
    /// No tensor of that name.
    case missingTensor(file: String, tensor: String)
    /// The caller's buffer does not have the tensor's element count.
    case countMismatch(file: String, tensor: String, expected: Int, given: Int)
    /// The writer was given a name twice, the reserved name, or a shape that does not match the data.
    case invalidTensor(tensor: String, reason: String)
    /// Creating, writing, syncing or renaming the output failed.
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read safetensors file: \(reason)"
        case let .truncated(file, tensor, size, needed):
            let what = tensor.map { " (tensor '\($0)' is cut off)" } ?? ""
            return "\(file): truncated: the file is \(size) bytes but its header describes \(needed) bytes\(what); "
                + "the copy or download was probably interrupted — fetch or write the file again"
        case let .badHeader(file, tensor, reason):
            let at = tensor.map { " at entry '\($0)'" } ?? ""
            return "\(file): bad safetensors header\(at): \(reason); the file is corrupt or not a safetensors file"
        case let .offsetOutOfRange(file, tensor, begin, end, dataSize):
            return "\(file): tensor '\(tensor)' has data_offsets [\(begin), \(end)) beyond the data section of "
                + "\(dataSize) bytes; the header is corrupt or the file is truncated"
        case let .overlap(file, tensor, other):
            return "\(file): tensors '\(other)' and '\(tensor)' overlap in the data section; the header is corrupt"
        case let .unsupportedDType(file, tensor, dtype, supported):
            return "\(file): tensor '\(tensor)' has dtype \(dtype), which is not supported here (supported: "
                + "\(supported.joined(separator: ", "))); convert the file, e.g. to F32 with the Python safetensors library"
        case let .wrongDType(file, tensor, dtype, expected):
            return "\(file): tensor '\(tensor)' is \(dtype), but the caller reads it as \(expected.joined(separator: " or ")); "
                + "the file does not hold what this program expects under that name"
        case let .sizeMismatch(file, tensor, shape, dtype, byteCount):
            let n = shape.reduce(1, *)
            return "\(file): tensor '\(tensor)' has shape \(shape) of \(dtype) (\(n) elements) but its data_offsets "
                + "span \(byteCount) bytes; the header is corrupt"
        case let .missingTensor(file, tensor):
            return "\(file): no tensor named '\(tensor)'; check the name (list them with `names`) and that this is the right file"
        case let .countMismatch(file, tensor, expected, given):
            return "\(file): tensor '\(tensor)' has \(expected) elements but the destination holds \(given); "
                + "the model configuration does not match the file"
        case let .invalidTensor(tensor, reason):
            return "cannot add tensor '\(tensor)': \(reason)"
        case let .writeFailed(file, reason):
            return "\(file): cannot write safetensors file: \(reason); check the directory exists, is writable and has space"
        }
    }
}

/// Why a file could not be read, in words: Foundation reports a directory or a missing file as "The file couldn't
/// be opened" (NSCocoaErrorDomain error 256/260), which names no cause.
public enum FileReadFailure {
    public static func reason(_ url: URL, _ error: Error) -> String {
        // access() tells a missing file from one behind a directory this process may not search (EACCES).
        if access(url.path, F_OK) != 0 {
            return errno == ENOENT ? "no such file" : String(cString: strerror(errno))
        }
        var st = stat()
        if stat(url.path, &st) == 0 {
            switch st.st_mode & S_IFMT {
            case S_IFDIR: return "it is a directory, not a file"
            case S_IFREG: break
            // Foundation reads these as "You don't have permission", even as root.
            case S_IFIFO: return "it is a FIFO, not a regular file"
            case S_IFCHR, S_IFBLK: return "it is a device, not a regular file"
            default: return "it is not a regular file"
            }
        }
        if access(url.path, R_OK) != 0 { return String(cString: strerror(errno)) }
        return error.localizedDescription
    }
}
