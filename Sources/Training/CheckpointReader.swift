// Finding, validating and loading sharded checkpoints (OUT/checkpoints/step-XXXXXXXX/). Every check names the
// file: the manifest's own checksum and consistency, each shard's presence, size and SHA-256, the shards' metadata
// against the manifest, and finite values. Loading reads every shard (each rank holds a full replica), so a
// checkpoint resumes at any world size.
import Crypto
import Foundation
import Kernels
import SafeTensors

extension CheckpointStore {
    /// A checkpoint read completely and checked.
    public struct Loaded {
        public let directory: URL
        public let manifest: CheckpointManifest
        public let params: [Float], m: [Float], v: [Float]
        /// The EMA of the weights, when the run kept one.
        public let ema: [Float]?
    }

    public static func read(_ dir: URL) throws -> Loaded {
        let manifestURL = dir.appendingPathComponent(CheckpointManifest.fileName)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory) else {
            throw CheckpointError(dir.path, "does not exist; give a checkpoint directory (OUT/checkpoints/step-N), or --resume latest")
        }
        guard isDirectory.boolValue else {
            throw CheckpointError(dir.path, "is a file, not a checkpoint directory (OUT/checkpoints/step-N, which holds \(CheckpointManifest.fileName) and the shards)")
        }
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw CheckpointError(dir.path, "no \(CheckpointManifest.fileName): not a complete checkpoint (a write was interrupted?)")
        }
        let manifest: CheckpointManifest
        do { manifest = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
            throw CheckpointError(manifestURL.path, "unreadable manifest: \(error)")
        }
        try manifest.verify(path: manifestURL.path, raw: data)
        // The shard sizes on disk bound the allocation below (verify ties trainable_count to them): a manifest that
        // claims more bytes than its files hold is refused before four arrays of its count are allocated.
        for shard in manifest.shards {
            let url = dir.appendingPathComponent(shard.file)
            guard let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int else {
                throw CheckpointError(url.path, "shard of rank \(shard.rank) is missing")
            }
            guard size == shard.bytes else {
                throw CheckpointError(url.path, "shard is \(size) bytes, the manifest says \(shard.bytes) (truncated or replaced)")
            }
        }
        let total = manifest.trainableCount
        var params = [Float](repeating: 0, count: total), m = params, v = params, ema = params
        var withEMA: Bool?
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
            let file = try SafeTensorsFile(data: bytes, url: url)
            // The shard's own record of what it is must be what the manifest says it is.
            let expected = ["rank": "\(shard.rank)", "world_size": "\(manifest.worldSize)", "offset": "\(shard.offset)",
                            "count": "\(shard.count)", "step": "\(manifest.step)"]
            for (key, value) in expected.sorted(by: { $0.key < $1.key }) where file.metadata[key] != value {
                throw CheckpointError(url.path, "its metadata says \(key) \(file.metadata[key] ?? "(none)") but the manifest says \(value)")
            }
            // Every shard holds an EMA, or none does.
            let hasEMA = file.info("ema") != nil
            if let w = withEMA, w != hasEMA {
                throw CheckpointError(url.path, "\(hasEMA ? "holds" : "lacks") an EMA tensor that the other shards \(hasEMA ? "lack" : "hold")")
            }
            withEMA = hasEMA
            for (name, array) in [("params", 0), ("m", 1), ("v", 2)] + (hasEMA ? [("ema", 3)] : []) {
                func copy(_ a: inout [Float]) throws {
                    try a.withUnsafeMutableBufferPointer {
                        guard let base = $0.baseAddress else { return }
                        try file.copyFloats(name, into: base + shard.offset, count: shard.count)
                        if !Elementwise.allFinite(count: shard.count, base + shard.offset) {
                            throw CheckpointError(url.path, "tensor '\(name)' holds a non-finite value")
                        }
                    }
                }
                switch array { case 0: try copy(&params); case 1: try copy(&m); case 2: try copy(&v); default: try copy(&ema) }
            }
        }
        return Loaded(directory: dir, manifest: manifest, params: params, m: m, v: v, ema: withEMA == true ? ema : nil)
    }

    /// The checkpoint's directory, manifest and shard files: everything reading it touched.
    public static func files(of loaded: Loaded) -> [String] {
        [loaded.directory.path, loaded.directory.appendingPathComponent(CheckpointManifest.fileName).path]
            + loaded.manifest.shards.map { loaded.directory.appendingPathComponent($0.file).path }
    }

    /// What `--resume` found.
    public enum Resolution {
        /// A valid checkpoint; `skipped` names newer directories that were not (and why).
        case found(Loaded, skipped: [String])
        /// No checkpoint: the run starts fresh. `incomplete` names step directories without a manifest
        /// (interrupted writes, which are not checkpoints).
        case none(incomplete: [String])
    }

    /// Resolves `--resume`: "latest" is the newest valid checkpoint under OUT/checkpoints; .none when there is no
    /// committed checkpoint at all (directories without a manifest are interrupted writes, not checkpoints); and
    /// an error naming each one when there are committed checkpoints but none is valid (starting fresh over them
    /// would lose the run). Anything else is a directory, which must be valid.
    public static func resolve(_ spec: String, out: URL) throws -> Resolution {
        guard spec == "latest" else { return .found(try read(URL(fileURLWithPath: spec)), skipped: []) }
        var skipped: [String] = [], invalid = 0, incomplete: [String] = []
        for dir in listStepDirectories(root(out)).reversed() {
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(CheckpointManifest.fileName).path) else {
                incomplete.append(dir.path)
                skipped.append("\(dir.path): no \(CheckpointManifest.fileName) (an interrupted write)")
                continue
            }
            do {
                let loaded = try read(dir)
                // A copy under another step's name is not where this step's checkpoint belongs: "latest" by
                // name would pick it over the real newest (Trainer.checkResumePoint refuses it when named).
                guard stepNumber(dir.lastPathComponent) == loaded.manifest.step else {
                    throw CheckpointError(dir.path, "is named for another step than its manifest's \(loaded.manifest.step) (a renamed copy)")
                }
                return .found(loaded, skipped: skipped)
            } catch {
                invalid += 1
                skipped.append("\(error)")
            }
        }
        guard invalid == 0 else {
            throw CheckpointError(root(out).path, "--resume latest found no valid checkpoint among \(invalid) committed ones:\n  "
                + skipped.joined(separator: "\n  ")
                + "\nRepair or remove them, resume from an explicit --resume DIR, or start over with --overwrite")
        }
        return .none(incomplete: incomplete)
    }

    /// A checkpoint named on a command line: a step directory, or "latest:OUT" for the newest valid one of the run
    /// in OUT (which must exist). `note` hears about invalid newer ones that were skipped.
    public static func locate(_ argument: String, note: (String) -> Void) throws -> Loaded {
        guard argument.hasPrefix("latest:") else { return try read(URL(fileURLWithPath: argument)) }
        let out = URL(fileURLWithPath: String(argument.dropFirst("latest:".count)))
        switch try resolve("latest", out: out) {
        case .found(let loaded, let skipped):
            for s in skipped { note("skipped invalid checkpoint: \(s)") }
            return loaded
        case .none:
            throw CheckpointError(root(out).path, "holds no committed checkpoint")
        }
    }
}
