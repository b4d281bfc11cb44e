// Writing, finding, validating and loading sharded checkpoints (OUT/checkpoints/step-XXXXXXXX/).
//
// Commit protocol: every rank writes its slice of (params, AdamW m, AdamW v) to a temporary name, fsyncs and renames
// it; the shard checksums reach rank 0 through one small all-reduce; a barrier; rank 0 writes manifest.json by
// temp + fsync + rename, last; a barrier. Loading reads every shard (each rank holds a full replica), so a checkpoint
// resumes at any world size.
import Crypto
import Foundation
import Distributed
import Model
import SafeTensors

/// What a checkpoint holds: the trainable weights and AdamW moments (full replicas; each rank writes its slice),
/// the run's state and the options and config it was made with.
public struct CheckpointSnapshot {
    public let params: FloatBuffer, m: FloatBuffer, v: FloatBuffer
    public let state: TrainState
    public let options: TrainOptions
    public let config: ModelConfig
    public let totalSteps: Int
    /// The learning rate of the last step taken.
    public let lr: Double
    public let baseSHA256: String?
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
        for (name, buffer) in [("params", snapshot.params), ("m", snapshot.m), ("v", snapshot.v)] {
            try writer.add(name, shape: [slice.count],
                           floats: UnsafeBufferPointer(start: buffer.pointer + slice.lowerBound, count: slice.count))
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
                createdAt: ISO8601DateFormatter().string(from: Date()))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(Array(try encoder.encode(manifest)), to: dir.appendingPathComponent(CheckpointManifest.fileName))
            applyTotalLimit(snapshot.options.checkpointsTotalLimit, out: out, newest: dir, log: log)
        }
        try comm.barrier()
        return dir
    }

    /// Keeps the newest `limit` committed checkpoints; also clears unfinished directories older than the one just
    /// committed (leftovers of crashes). Runs only after the new manifest is durable.
    static func applyTotalLimit(_ limit: Int?, out: URL, newest: URL, log: RunLog) {
        let fm = FileManager.default
        let all = listStepDirectories(root(out))
        let newestStep = stepNumber(newest.lastPathComponent) ?? Int.max
        var committed: [URL] = []
        for dir in all {
            if fm.fileExists(atPath: dir.appendingPathComponent(CheckpointManifest.fileName).path) {
                committed.append(dir)
            } else if (stepNumber(dir.lastPathComponent) ?? Int.max) < newestStep {
                try? fm.removeItem(at: dir)
            }
        }
        if let limit, committed.count > limit {
            for dir in committed.prefix(committed.count - limit) where dir.path != newest.path {
                try? fm.removeItem(at: dir)
                log.info("removed old checkpoint \(dir.lastPathComponent) (--checkpoints-total-limit \(limit))")
            }
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

    // MARK: reading

    /// A checkpoint read completely and checked: manifest, every shard's presence, size and SHA-256.
    public struct Loaded {
        public let directory: URL
        public let manifest: CheckpointManifest
        public let params: [Float], m: [Float], v: [Float]
    }

    public static func read(_ dir: URL) throws -> Loaded {
        let manifestURL = dir.appendingPathComponent(CheckpointManifest.fileName)
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw CheckpointError(dir.path, "no \(CheckpointManifest.fileName): not a complete checkpoint (a write was interrupted?)")
        }
        let manifest: CheckpointManifest
        do { manifest = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
            throw CheckpointError(manifestURL.path, "unreadable manifest: \(error)")
        }
        guard manifest.format == CheckpointManifest.formatName else {
            throw CheckpointError(manifestURL.path, "format '\(manifest.format)', expected '\(CheckpointManifest.formatName)'")
        }
        let total = manifest.trainableCount
        var params = [Float](repeating: 0, count: total), m = params, v = params
        var covered = 0
        for shard in manifest.shards.sorted(by: { $0.offset < $1.offset }) {
            let url = dir.appendingPathComponent(shard.file)
            guard let bytes = FileManager.default.contents(atPath: url.path) else {
                throw CheckpointError(url.path, "shard of rank \(shard.rank) is missing")
            }
            guard bytes.count == shard.bytes else {
                throw CheckpointError(url.path, "shard is \(bytes.count) bytes, the manifest says \(shard.bytes) (truncated or replaced)")
            }
            let hex = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            guard hex == shard.sha256 else {
                throw CheckpointError(url.path, "SHA-256 mismatch (corrupted): \(hex) vs manifest \(shard.sha256)")
            }
            guard shard.offset == covered, shard.offset + shard.count <= total else {
                throw CheckpointError(manifestURL.path, "shards do not tile the \(total) parameters (at \(shard.file))")
            }
            let file = try SafeTensorsFile(data: bytes, url: url)
            try params.withUnsafeMutableBufferPointer { try file.copyFloats("params", into: $0.baseAddress! + shard.offset, count: shard.count) }
            try m.withUnsafeMutableBufferPointer { try file.copyFloats("m", into: $0.baseAddress! + shard.offset, count: shard.count) }
            try v.withUnsafeMutableBufferPointer { try file.copyFloats("v", into: $0.baseAddress! + shard.offset, count: shard.count) }
            covered += shard.count
        }
        guard covered == total else {
            throw CheckpointError(manifestURL.path, "shards cover \(covered) of \(total) parameters")
        }
        return Loaded(directory: dir, manifest: manifest, params: params, m: m, v: v)
    }

    /// Resolves `--resume`: "latest" is the newest valid checkpoint under OUT/checkpoints (naming any invalid ones
    /// skipped through `note`; nil if there is none); otherwise the given directory, which must be valid.
    public static func resolve(_ spec: String, out: URL, note: (String) -> Void) throws -> Loaded? {
        guard spec == "latest" else { return try read(URL(fileURLWithPath: spec)) }
        var skipped: [String] = []
        for dir in listStepDirectories(root(out)).reversed() {
            do {
                let loaded = try read(dir)
                for s in skipped { note("resume: skipped invalid checkpoint: \(s)") }
                return loaded
            } catch {
                skipped.append("\(error)")
            }
        }
        for s in skipped { note("resume: skipped invalid checkpoint: \(s)") }
        note("resume: no valid checkpoint under \(root(out).path); starting from scratch")
        return nil
    }

    /// A checkpoint named on a command line: a step directory, or "latest:OUT" for the newest valid one of the run
    /// in OUT (which must exist).
    public static func locate(_ argument: String, note: (String) -> Void) throws -> Loaded {
        guard argument.hasPrefix("latest:") else { return try read(URL(fileURLWithPath: argument)) }
        let out = URL(fileURLWithPath: String(argument.dropFirst("latest:".count)))
        guard let loaded = try resolve("latest", out: out, note: note) else {
            throw CheckpointError(root(out).path, "holds no valid checkpoint")
        }
        return loaded
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
            if n < 0 {
                let reason = String(cString: strerror(errno))
                close(fd); unlink(temp)
                throw CheckpointError(temp, "write failed: \(reason) (disk full?)")
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
