// The decode cache of a paired dataset: decoding 50k images must happen once, not per rank or per epoch. Every row
// is decoded, converted and resized once into a cache file named by a hash of the rows' paths, sizes, modification
// times and prompts and the decode settings (see resolveFiles), in a cache directory independent of the dataset's.
// An unchanged dataset maps the file again; a changed source file changes the name, so it is rebuilt. The file is
// written under a temporary name, fsynced and renamed (never seen half-written); builders on one node take an
// exclusive flock first, so the second waits and then maps the first's file instead of decoding again.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension PairedDataset {
    /// $CONTROLNET_CACHE_DIR, else $XDG_CACHE_HOME/controlnet/paired, else ~/.cache/controlnet/paired.
    public static var defaultCacheDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["CONTROLNET_CACHE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("controlnet/paired")
    }

    /// The decoded dataset: from the cache when it matches, else decoded now (with `threads` threads, calling
    /// progress(done, total) after each batch of rows) and cached. A row whose image or condition is missing,
    /// unreadable or corrupt is an error naming the file and the manifest line, unless `skipBad`: then it is
    /// left out and listed in `skipped`. A path escaping the directory is always an error.
    public func load(settings: DecodeSettings, cacheDirectory: URL = PairedDataset.defaultCacheDirectory,
                     skipBad: Bool = false, threads: Int = 1,
                     progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> PairedImages {
        let (files, key) = try resolveFiles(settings: settings)
        let url = cacheDirectory.appendingPathComponent("paired-\(key.prefix(32)).cache")
        if let cached = PairedImages(mapping: url, key: key, settings: settings, reused: true) {
            return try checked(cached, skipBad: skipBad)
        }
        do {
            try FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        } catch {
            throw ImageDataError.cacheFailure(path: cacheDirectory.path, reason: error.localizedDescription,
                                              fix: "Pass a writable cache directory (or set CONTROLNET_CACHE_DIR).")
        }
        let lock = try CacheLock(url.path + ".lock")
        defer { lock.release() }
        // Another process may have built it while this one waited for the lock.
        if let cached = PairedImages(mapping: url, key: key, settings: settings, reused: true) {
            return try checked(cached, skipBad: skipBad)
        }
        removeAbandonedTemporaries(of: url)
        try build(url, files: files, key: key, settings: settings, skipBad: skipBad, threads: max(1, threads),
                  progress: progress)
        removeSuperseded(in: cacheDirectory, keeping: url, settings: settings)
        guard let built = PairedImages(mapping: url, key: key, settings: settings, reused: false) else {
            throw ImageDataError.cacheFailure(path: url.path, reason: "the file just written does not read back",
                                              fix: "Check the disk, delete the file and run again.")
        }
        return try checked(built, skipBad: skipBad)
    }

    /// Deletes this dataset's caches for the same settings built from earlier contents (same manifest path, other
    /// key): each can be gigabytes, and a changed dataset never maps them again. Processes still mapping one keep
    /// their pages until they unmap.
    private func removeSuperseded(in directory: URL, keeping url: URL, settings: DecodeSettings) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix("paired-") && name.hasSuffix(".cache") && name != url.lastPathComponent {
            let path = directory.appendingPathComponent(name).path
            guard let header = PairedCacheFile.read(path), header.manifest == manifest.path,
                  header.size == settings.size, header.imageChannels == settings.imageChannels,
                  header.conditioningChannels == settings.conditioningChannels,
                  header.filter == settings.filter.rawValue
            else { continue }
            unlink(path)
        }
    }

    /// Deletes temporary files of builds of this cache that died (killed, out of disk): this process holds the
    /// lock, so no live builder on this node writes them; one untouched for 10 minutes is not being written from
    /// another node either.
    private func removeAbandonedTemporaries(of url: URL) {
        let directory = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent).tmp-"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(prefix) {
            let path = directory.appendingPathComponent(name).path
            var info = stat()
            if stat(path, &info) == 0 && time(nil) - info.st_mtim.tv_sec > 600 { unlink(path) }
        }
    }

    private func checked(_ images: PairedImages, skipBad: Bool) throws -> PairedImages {
        if !skipBad, let first = images.skipped.first {
            throw ImageDataError.skippedRows(manifest: manifest.path, count: images.skipped.count,
                                             first: "line \(first.line), \(first.column) '\(first.file)'")
        }
        guard images.count > 0 else {
            throw ImageDataError.emptyDataset(manifest: manifest.path, skipped: images.skipped.count)
        }
        return images
    }

    private func build(_ url: URL, files: [(ResolvedFile?, ResolvedFile?)], key: String, settings: DecodeSettings,
                       skipBad: Bool, threads: Int, progress: (Int, Int) -> Void) throws {
        let n = rows.count
        let (imageBytes, conditionBytes) = (settings.imageBytes, settings.conditionBytes)
        let needed = n * (imageBytes + conditionBytes)
        try checkFreeSpace(url.deletingLastPathComponent().path, needed: needed)
        let temp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        let fd = Glibc.open(temp.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw cacheError(temp.path, "cannot create (\(String(cString: strerror(errno))))") }
        var committed = false
        defer {
            close(fd)
            if !committed { unlink(temp.path) }
        }
        // Row i goes to slot i; rows skipped as bad are squeezed out at the end.
        let outcomes = RowOutcomes(count: n)
        let chunk = threads * 8
        for start in stride(from: 0, to: n, by: chunk) {
            let end = min(n, start + chunk)
            let work: @Sendable (Int) -> Void = { worker in
                for i in stride(from: start + worker, to: end, by: threads) {
                    do {
                        let (image, condition) = try self.decodeRow(i, files: files[i], settings: settings)
                        try writeAll(fd, image, at: i * imageBytes, path: temp.path)
                        try writeAll(fd, condition, at: n * imageBytes + i * conditionBytes, path: temp.path)
                    } catch let error as ImageDataError {
                        outcomes.set(i, error)
                    } catch {
                        outcomes.set(i, .cacheFailure(path: temp.path, reason: "\(error)", fix: ""))
                    }
                }
            }
            if threads == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: threads, execute: work) }
            for i in start ..< end {
                guard let error = outcomes.get(i) else { continue }
                guard skipBad, case let .badRow(_, line, column, file, problem) = error else { throw error }
                outcomes.skip(i, SkippedRow(line: line, column: column, file: file, problem: problem))
            }
            progress(end, n)
        }
        let good = (0 ..< n).filter { outcomes.skipped(at: $0) == nil }
        if good.count < n {
            try compact(fd, good: good, rows: n, imageBytes: imageBytes, conditionBytes: conditionBytes,
                        path: temp.path)
        }
        let header = PairedCacheFile(
            version: PairedCacheFile.version, key: key, count: good.count, size: settings.size,
            imageChannels: settings.imageChannels, conditioningChannels: settings.conditioningChannels,
            filter: settings.filter.rawValue, manifest: manifest.path, prompts: good.map { rows[$0].prompt },
            lines: good.map { rows[$0].line }, skipped: (0 ..< n).compactMap { outcomes.skipped(at: $0) })
        let dataEnd = good.count * (imageBytes + conditionBytes)
        guard ftruncate(fd, off_t(dataEnd)) == 0 else { throw cacheError(temp.path, "ftruncate failed") }
        try writeAll(fd, try header.trailer(), at: dataEnd, path: temp.path)
        guard fsync(fd) == 0 else { throw cacheError(temp.path, "fsync failed: \(String(cString: strerror(errno)))") }
        guard rename(temp.path, url.path) == 0 else {
            throw cacheError(url.path, "rename failed: \(String(cString: strerror(errno)))")
        }
        committed = true
        let dir = Glibc.open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 { _ = fsync(dir); close(dir) }  // the rename itself survives a crash
    }

    /// Moves the good rows' images, then conditions, down to consecutive slots. Every move goes to an offset no
    /// greater than its source, in increasing order, so no source is overwritten before it is read.
    private func compact(_ fd: Int32, good: [Int], rows n: Int, imageBytes: Int, conditionBytes: Int,
                         path: String) throws {
        var buffer = [UInt8](repeating: 0, count: max(imageBytes, conditionBytes))
        for (j, i) in good.enumerated() where j != i {
            try move(fd, &buffer, imageBytes, from: i * imageBytes, to: j * imageBytes, path: path)
        }
        for (j, i) in good.enumerated() {
            try move(fd, &buffer, conditionBytes, from: n * imageBytes + i * conditionBytes,
                     to: good.count * imageBytes + j * conditionBytes, path: path)
        }
    }

    private func move(_ fd: Int32, _ buffer: inout [UInt8], _ count: Int, from: Int, to: Int, path: String) throws {
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(from)) }
        guard got == count else { throw cacheError(path, "short read while compacting") }
        try writeAll(fd, Array(buffer[0 ..< count]), at: to, path: path)
    }

    private func checkFreeSpace(_ directory: String, needed: Int) throws {
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else { return }
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        if free < needed + (64 << 20) {
            throw ImageDataError.cacheFailure(
                path: directory, reason: "needs \(needed >> 20) MiB for \(rows.count) rows, \(free >> 20) MiB free",
                fix: "Free space, choose another cache directory (CONTROLNET_CACHE_DIR) or a smaller size.")
        }
    }
}

private func cacheError(_ path: String, _ reason: String) -> ImageDataError {
    .cacheFailure(path: path, reason: reason, fix: "Check that the cache directory is writable and has space.")
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw cacheError(path, "write failed: \(String(cString: strerror(errno)))") }
        done += n
    }
}

/// Per-row results shared by the decoding threads; each row's slot is written by one thread only, and read after
/// the batch has finished (concurrentPerform returns after every iteration), under a lock for simplicity.
private final class RowOutcomes: @unchecked Sendable {
    private var errors: [ImageDataError?]
    private var skippedRows: [SkippedRow?]
    private let lock = NSLock()

    init(count: Int) {
        errors = Array(repeating: nil, count: count)
        skippedRows = Array(repeating: nil, count: count)
    }

    func set(_ i: Int, _ error: ImageDataError) { lock.withLock { errors[i] = error } }
    func get(_ i: Int) -> ImageDataError? { lock.withLock { errors[i] } }
    func skip(_ i: Int, _ row: SkippedRow) { lock.withLock { skippedRows[i] = row } }
    func skipped(at i: Int) -> SkippedRow? { lock.withLock { skippedRows[i] } }
}

/// An exclusive flock on a lock file beside the cache file. Where flock is unsupported (some network file systems)
/// it is skipped: the temporary-file-and-rename write stays safe, two builders merely both decode.
private final class CacheLock {
    private let fd: Int32

    init(_ path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ImageDataError.cacheFailure(path: path, reason: "cannot create the lock file "
                                              + "(\(String(cString: strerror(errno))))",
                                              fix: "Pass a writable cache directory (or set CONTROLNET_CACHE_DIR).")
        }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
    }

    func release() {
        _ = flock(fd, LOCK_UN)
        close(fd)
    }
}
