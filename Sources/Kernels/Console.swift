// Messages to standard error that can never kill the process. Foundation's FileHandle.write traps when the write
// fails, and it does fail: stderr redirected to a file under a file-size limit (ulimit -f, EFBIG), to a full disk
// (ENOSPC) or to a closed pipe. A warning that cannot be shown is lost; the run must not die of it.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Console {
    /// Writes `text` to file descriptor 2, retrying short writes and EINTR, dropping it silently on any other error.
    public static func error(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
