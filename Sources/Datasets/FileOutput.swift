// Whole-file writes that fail with a message naming the file and saying what to do, never a crash and never a
// half-written file at the target: the bytes go to a temporary sibling that is renamed over the target only when
// complete. Foundation's Data.write reports EFBIG (ulimit -f) or ENOSPC as "NSCocoaErrorDomain error 512";
// here the reason is the system's, with the fix.
import Foundation

public enum FileOutput {
    /// The reason for a failed write, with what to do about the usual ones.
    public static func reason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        switch code {
        case EFBIG: return "\(text): the file-size limit (ulimit -f) is reached; raise it or write a smaller file"
        case ENOSPC: return "\(text): the disk is full; free space or write elsewhere"
        case EDQUOT: return "\(text): the disk quota is reached; free space or write elsewhere"
        default: return text
        }
    }

    /// Writes `bytes` to `url` (replacing it); throws DatasetError.cannotWrite naming `url`.
    public static func write(_ bytes: [UInt8], to url: URL) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        func fail(_ code: Int32) -> DatasetError {
            unlink(temp)
            return DatasetError.cannotWrite(path: url.path, reason: reason(code))
        }
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DatasetError.cannotWrite(path: url.path, reason: reason(errno)) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { let code = n < 0 ? errno : EIO; close(fd); throw fail(code) }
            offset += n
        }
        // close reports errors a network file system defers until then.
        guard close(fd) == 0 else { throw fail(errno) }
        guard rename(temp, url.path) == 0 else { throw fail(errno) }
    }
}
