// Writing, finding, validating and loading sharded checkpoints (OUT/checkpoints/step-XXXXXXXX/).
//
// Commit protocol: every rank writes its slice of (params, AdamW m, AdamW v) to a temporary name, fsyncs and renames
// it; the shard checksums reach rank 0 through one small all-reduce; a barrier; rank 0 writes manifest.json by
// temp + fsync + rename, last; a barrier. Loading reads every shard (each rank holds a full replica), so a checkpoint
// resumes at any world size.
import Crypto
import Foundation
import Datasets
import Distributed
import Model
import SafeTensors

/// What a checkpoint holds: the trainable weights and AdamW moments (full replicas; each rank writes its slice),
/// the run's state and the options and config it was made with.
public struct CheckpointSnapshot {
    public let params: FloatBuffer, m: FloatBuffer, v: FloatBuffer
    /// The elements of the arena m and v hold: everything, or (ZeRO-1) this rank's slice, which is then its shard.
    public let optimizerSlice: Range<Int>
    /// The EMA of the weights, when kept (full replica; each rank writes its slice).
    public let ema: FloatBuffer?
    public let state: TrainState
    public let options: TrainOptions
    public let config: ModelConfig
    public let totalSteps: Int
    /// The learning rate of the last step taken.
    public let lr: Double
    public let baseSHA256: String?
    public let runID: String
    public let data: DataFingerprint?
}

public enum CheckpointStore {
    public static func root(_ out: URL) -> URL { out.appendingPathComponent("checkpoints") }

    // MARK: writing

    /// Writes a checkpoint of `snapshot` under `out` (collective: every rank must call it with its replica).
    /// After the commit, rank 0 applies the snapshot's --checkpoints-total-limit.
    @discardableResult
    public static func write(_ snapshot: CheckpointSnapshot, comm: any Communicator, out: URL, log: RunLog) throws -> URL {
        let rank = comm.rank, world = comm.size
        let total = snapshot.params.count
        let dir = root(out).appendingPathComponent(CheckpointManifest.directoryName(step: snapshot.state.step))
        let fm = FileManager.default
        if rank == 0 {
            // A checkpoint of this step may exist from an earlier attempt: unpublish it before its shards change,
            // and clear temporary files that killed writers left behind.
            try? fm.removeItem(at: dir.appendingPathComponent(CheckpointManifest.fileName))
            for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] where name.hasPrefix(".") && name.contains(".tmp-") {
                try? fm.removeItem(at: dir.appendingPathComponent(name))
            }
        }
        try comm.barrier()
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError(dir.path, "cannot create the directory: \(error.localizedDescription)")
        }
        let slice = CheckpointManifest.slice(rank: rank, worldSize: world, count: total)
        var writer = SafeTensorsWriter()
        // Under ZeRO-1 the moments this rank holds are exactly its shard's slice.
        let momentOffset = slice.lowerBound - snapshot.optimizerSlice.lowerBound
        precondition(momentOffset >= 0 && momentOffset + slice.count <= snapshot.m.count, "moments do not cover the shard")
        var tensors = [("params", snapshot.params.pointer + slice.lowerBound), ("m", snapshot.m.pointer + momentOffset),
                       ("v", snapshot.v.pointer + momentOffset)]
        if let ema = snapshot.ema { tensors.append(("ema", ema.pointer + slice.lowerBound)) }
        for (name, pointer) in tensors {
            try writer.add(name, shape: [slice.count], floats: UnsafeBufferPointer(start: pointer, count: slice.count))
        }
        let bytes = writer.serialized(metadata: [
            "rank": "\(rank)", "world_size": "\(world)", "offset": "\(slice.lowerBound)", "count": "\(slice.count)",
            "step": "\(snapshot.state.step)",
        ])
        let name = CheckpointManifest.shardFileName(rank: rank, worldSize: world)
        try AtomicFile.write(bytes, to: dir.appendingPathComponent(name))
        let digest = Array(SHA256.hash(data: bytes))
        // Gather (digest, size) of every shard on every rank: 8 words of 32 bits + the size, exact in Doubles.
        var table = [Double](repeating: 0, count: world * 9)
        for w in 0..<8 {
            let word = digest[(w * 4)..<(w * 4 + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            table[rank * 9 + w] = Double(word)
        }
        table[rank * 9 + 8] = Double(bytes.count)
        try comm.allReduce(&table, op: .sum)
        try comm.barrier()
        if let pause = ProcessInfo.processInfo.environment["CONTROLNET_FAULT_PAUSE_BEFORE_MANIFEST_MS"].flatMap(Int.init) {
            // Fault-injection hook for the crash tests: widens the window between durable shards and the manifest.
            usleep(UInt32(max(0, min(pause, 600_000)) * 1000))
        }
        if rank == 0 {
            var shards: [ShardRecord] = []
            for r in 0..<world {
                let words = (0..<8).map { UInt32(table[r * 9 + $0]) }
                let hex = words.map { String(format: "%08x", $0) }.joined()
                let s = CheckpointManifest.slice(rank: r, worldSize: world, count: total)
                shards.append(ShardRecord(file: CheckpointManifest.shardFileName(rank: r, worldSize: world), rank: r,
                                          offset: s.lowerBound, count: s.count, bytes: Int(table[r * 9 + 8]), sha256: hex))
            }
            let o = snapshot.options, st = snapshot.state
            let manifest = CheckpointManifest(
                step: st.step, epoch: st.sampler.epoch, state: st, rng: .init(seed: o.seed),
                lrSchedule: .init(kind: o.lrSchedule, base: o.lr, warmup: o.warmupSteps, total: snapshot.totalSteps,
                                  minFraction: o.minLRFraction, current: snapshot.lr),
                mode: o.mode, config: snapshot.config.json, options: o, baseSHA256: snapshot.baseSHA256,
                worldSize: world, trainableCount: total, shards: shards,
                createdAt: ISO8601DateFormatter().string(from: Date()), runID: snapshot.runID, data: snapshot.data,
                manifestSHA256: nil)
            try AtomicFile.write(Array(try manifest.sealed()), to: dir.appendingPathComponent(CheckpointManifest.fileName))
            applyTotalLimit(snapshot.options.checkpointsTotalLimit, runID: snapshot.runID, out: out, newest: dir, log: log)
        }
        try comm.barrier()
        return dir
    }

    /// Keeps the newest `limit` committed checkpoints of this run (`runID`), deleting older ones of this run only
    /// and saying so; it runs only after the new manifest is durable. Anything else under checkpoints/ - another
    /// run's checkpoints, directories without a manifest (an interrupted write) - is left alone, except an empty
    /// step directory below the newest (nothing in it to lose). A checkpoint is
    /// this run's only if it is a real directory (not a symbolic link to somewhere else) named for the step its
    /// manifest records, as this code writes them: a copy put there under another name (even of this run's own,
    /// or of the checkpoint this run resumed from, whose run id it carries on) was not written there by the run.
    static func applyTotalLimit(_ limit: Int?, runID: String, out: URL, newest: URL, log: RunLog) {
        guard let limit else { return }
        let ours = namedManifests(root(out)).filter { dir, m in
            var st = stat()
            return m.runID == runID && lstat(dir.path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
        }
        if ours.count > limit {
            for (dir, manifest) in ours.prefix(ours.count - limit) where dir.path != newest.path {
                removeCheckpoint(dir, manifest, limit: limit, log: log)
            }
        }
        // An empty step directory below the newest is what a kill during a removal (or at a write's first mkdir)
        // leaves: no files, so nothing to lose; rmdir refuses anything that is not empty.
        let newestStep = stepNumber(newest.lastPathComponent) ?? 0
        for dir in listStepDirectories(root(out)) where (stepNumber(dir.lastPathComponent) ?? Int.max) < newestStep {
            var st = stat()
            guard lstat(dir.path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR,
                  ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? ["?"]).isEmpty,
                  rmdir(dir.path) == 0 else { continue }
            log.info("removed empty directory \(dir.lastPathComponent) (left by an interrupted write or removal)")
        }
    }

    /// Deletes what this run wrote in `dir` - the manifest first (so an interrupted removal leaves an incomplete
    /// directory, never a damaged checkpoint), then the shard files it lists under their canonical names - and
    /// removes the directory only when that leaves it empty. A file someone else put there is never touched: a
    /// recursive delete would take it with the checkpoint.
    static func removeCheckpoint(_ dir: URL, _ manifest: CheckpointManifest, limit: Int, log: RunLog) {
        let fm = FileManager.default
        // Only names this build writes: a manifest naming "../x" or a user's file is not followed.
        let shardNames = manifest.shards.map(\.file).filter { name in
            manifest.shards.contains { name == CheckpointManifest.shardFileName(rank: $0.rank, worldSize: manifest.worldSize) }
        }
        for name in [CheckpointManifest.fileName] + shardNames {
            let path = dir.appendingPathComponent(name).path
            guard fm.fileExists(atPath: path) else { continue }
            do { try fm.removeItem(atPath: path) } catch {
                log.warn("could not remove \(path) of old checkpoint \(dir.lastPathComponent): \(error.localizedDescription)")
                return
            }
        }
        if rmdir(dir.path) == 0 {
            log.info("removed old checkpoint \(dir.lastPathComponent) of this run (--checkpoints-total-limit \(limit))")
        } else {
            let left = ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
            log.warn("removed old checkpoint \(dir.lastPathComponent)'s manifest and shards (--checkpoints-total-limit \(limit)) but left \(dir.path): it also holds \(left.prefix(5).joined(separator: ", ")), which this run did not write")
        }
    }

    /// step-* directories whose manifest decodes and records the step the directory is named for (as this code
    /// writes them), oldest first: what retention and the resume checks count as checkpoints. Interrupted writes
    /// and copies under another step's name are not among them.
    static func namedManifests(_ root: URL) -> [(URL, CheckpointManifest)] {
        listStepDirectories(root).compactMap { dir in
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(CheckpointManifest.fileName).path),
                  let m = try? JSONDecoder().decode(CheckpointManifest.self, from: data),
                  dir.lastPathComponent == CheckpointManifest.directoryName(step: m.step) else { return nil }
            return (dir, m)
        }
    }

    static func stepNumber(_ name: String) -> Int? {
        guard name.hasPrefix("step-") else { return nil }
        return Int(name.dropFirst(5))
    }

    /// step-* directories, oldest first.
    static func listStepDirectories(_ root: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.compactMap { n in stepNumber(n).map { (n, $0) } }
            .sorted { $0.1 < $1.1 }
            .map { root.appendingPathComponent($0.0) }
    }
}

/// Durable replacement of a file: write a temporary sibling, fsync it, rename it over the target, fsync the directory.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to url: URL) throws {
        let dir = url.deletingLastPathComponent().path
        let temp = dir + "/.\(url.lastPathComponent).tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError(temp, "cannot create: \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                // EFBIG (ulimit -f) and ENOSPC come with their fix; the temporary file goes, the target is untouched.
                let reason = FileOutput.reason(n < 0 ? errno : EIO)
                close(fd); unlink(temp)
                throw CheckpointError(temp, "write failed: \(reason)")
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno)); close(fd); unlink(temp)
            throw CheckpointError(temp, "fsync failed: \(reason)")
        }
        close(fd)
        guard rename(temp, url.path) == 0 else {
            let reason = String(cString: strerror(errno)); unlink(temp)
            throw CheckpointError(url.path, "rename failed: \(reason)")
        }
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}
