// The run directory (--out) belongs to one run. Rank 0 claims it before anything is written: a lock held for the
// life of the process (flock, released by the kernel however the process ends) refuses a second run on the same
// directory, naming the holder's host and pid; the outputs of an earlier run are refused unless the run continues
// it (--resume) or replaces it (--overwrite, which removes them first and says what it removed).
import Foundation

public final class RunDirectory {
    public let url: URL
    private let lockFD: Int32

    public static let lockName = "run.lock"
    /// Everything a run writes at the top of its directory.
    public static let outputNames = ["metrics.jsonl", "checkpoints", "validation", "unet.safetensors",
                                     "controlnet.safetensors", RunStatus.fileName]

    private init(url: URL, lockFD: Int32) { self.url = url; self.lockFD = lockFD }
    deinit { close(lockFD) }   // releases the lock

    /// Claims `url` for this run (rank 0). `log` hears what --overwrite removed.
    public static func claim(_ url: URL, resume: Bool, overwrite: Bool, log: (String) -> Void) throws -> RunDirectory {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw OptionsError(option: "--out", message: "\(url.path) exists and is not a directory")
        }
        do { try fm.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw OptionsError(option: "--out", message: "cannot create \(url.path): \(error.localizedDescription)")
        }
        let lockPath = url.appendingPathComponent(lockName).path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw OptionsError(option: "--out", message: "cannot create the lock \(lockPath): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw OptionsError(option: "--out", message: "\(url.path) is in use by another run (\(holder.isEmpty ? "holder unknown" : holder)); wait for it to end, or choose another --out")
        }
        let me = "host \(ProcessInfo.processInfo.hostName), pid \(getpid()), since \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        _ = me.withCString { write(fd, $0, strlen($0)) }
        let directory = RunDirectory(url: url, lockFD: fd)

        let present = outputNames.filter { name in
            let path = url.appendingPathComponent(name).path
            guard fm.fileExists(atPath: path) else { return false }
            // An empty checkpoints/ or validation/ directory holds nothing to lose.
            if let entries = try? fm.contentsOfDirectory(atPath: path) { return !entries.isEmpty }
            return true
        }
        guard !present.isEmpty, !resume else { return directory }
        guard overwrite else {
            throw OptionsError(option: "--out", message: "\(url.path) already holds a run (\(present.joined(separator: ", "))): continue it with --resume latest, or replace it with --overwrite")
        }
        for name in present {
            do { try fm.removeItem(at: url.appendingPathComponent(name)) } catch {
                throw OptionsError(option: "--overwrite", message: "cannot remove \(url.appendingPathComponent(name).path): \(error.localizedDescription)")
            }
        }
        log("--overwrite: removed the earlier run's \(present.joined(separator: ", ")) from \(url.path)")
        return directory
    }
}

/// An output may not be an input: every command compares the files it will write with the files it reads, by
/// resolved path and by device and inode (so links and other spellings of a path are caught), before writing.
public enum PathGuard {
    /// (device, inode) of an existing file, or nil.
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// The absolute, symlink-resolved form of `path`; for a file that does not exist yet, its resolved directory.
    public static func resolved(_ path: String) -> String {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        if FileManager.default.fileExists(atPath: url.path) { return url.resolvingSymlinksInPath().path }
        return url.deletingLastPathComponent().resolvingSymlinksInPath().appendingPathComponent(url.lastPathComponent).path
    }

    /// True when `a` and `b` name the same file (or, for directories, when one holds the other if `nested`).
    public static func same(_ a: String, _ b: String, nested: Bool = false) -> Bool {
        let ra = resolved(a), rb = resolved(b)
        if ra == rb { return true }
        if let ia = identity(ra), let ib = identity(rb), ia == ib { return true }
        if nested { return ra.hasPrefix(rb + "/") || rb.hasPrefix(ra + "/") }
        return false
    }

    /// What is at `path` (following symbolic links) when it is neither a regular file nor a directory, or nil.
    static func specialKind(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        switch st.st_mode & S_IFMT {
        case S_IFREG, S_IFDIR: return nil
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// Refuses an output that exists and is not what the command writes: a device (/dev/full), a FIFO or a
    /// socket would take the bytes (or block, or fail at the end) after all the work; a directory where a file
    /// is expected would fail only at the rename. `directories` are the outputs that are directories by design.
    public static func checkKinds(_ outputs: [(option: String, path: String)], directories: Set<String> = []) throws {
        for out in outputs {
            // "" would resolve to the working directory: a script's unset variable would write there.
            guard !out.path.isEmpty else {
                throw OptionsError(option: out.option, message: "is empty; give a path (an unset variable in a script?)")
            }
            let wantDirectory = directories.contains(out.path)
            if let kind = specialKind(out.path) {
                throw OptionsError(option: out.option, message: "\(out.path) exists and is \(kind), not a \(wantDirectory ? "directory" : "regular file"); give a path to a \(wantDirectory ? "directory" : "file") (a new one, or one to replace)")
            }
            if isDirectory(out.path) != wantDirectory && FileManager.default.fileExists(atPath: out.path) {
                throw OptionsError(option: out.option, message: "\(out.path) exists and is \(wantDirectory ? "a file" : "a directory"), where a \(wantDirectory ? "directory" : "file") is written; give a path to a \(wantDirectory ? "directory" : "file")")
            }
        }
    }

    /// Refuses an output of the wrong kind (checkKinds), and one that is one of the inputs (or, for a directory
    /// output/input, holds or is inside it).
    public static func check(outputs: [(option: String, path: String)], inputs: [(option: String, path: String)],
                             directories: Set<String> = []) throws {
        try checkKinds(outputs, directories: directories)
        for (i, out) in outputs.enumerated() {
            for input in inputs where same(out.path, input.path, nested: isDirectory(out.path) || isDirectory(input.path)) {
                throw OptionsError(option: out.option, message: "\(out.path) is also the input of \(input.option) (\(input.path)); writing it would destroy what is being read. Choose another \(out.option)")
            }
            for other in outputs[(i + 1)...] where same(out.path, other.path) {
                throw OptionsError(option: other.option, message: "\(other.path) is also the output of \(out.option); choose another \(other.option)")
            }
        }
    }

    /// Refuses a file output whose directory does not exist or cannot be written, before the work that produces
    /// it (sampling thousands of images only to fail at the write).
    public static func checkWritableParents(_ outputs: [(option: String, path: String)]) throws {
        for out in outputs {
            let parent = URL(fileURLWithPath: out.path).deletingLastPathComponent().path
            guard isDirectory(parent) else {
                throw OptionsError(option: out.option, message: "\(out.path): its directory \(parent) does not exist; create it first")
            }
            guard access(parent, W_OK | X_OK) == 0 else {
                throw OptionsError(option: out.option, message: "\(out.path): its directory \(parent) is not writable (\(String(cString: strerror(errno))))")
            }
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }
}
