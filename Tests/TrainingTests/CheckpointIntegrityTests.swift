// Checkpoints protect themselves and the run: an edited manifest, a manifest that names a file outside its
// directory or disagrees with its shards, and a resume on other data or hints are refused naming the file or
// option; --resume latest with only invalid checkpoints refuses instead of starting over them; retention removes
// only the run's own committed checkpoints.
import XCTest
import Foundation
import Crypto
import Datasets
import Distributed
@testable import Training

final class CheckpointIntegrityTests: XCTestCase {
    /// A 6-step run with a checkpoint every 3 steps; returns (workspace, data, base, options, checkpoints root).
    private func trainedRun(limit: Int? = nil) throws -> (Workspace, TrainOptions, URL) {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "ck", steps: 6)
        o.checkpointEvery = 3; o.checkpointsTotalLimit = limit
        _ = try train(o)
        return (ws, o, ws.root.appendingPathComponent("ck/checkpoints"))
    }

    private func manifestURL(_ root: URL, _ step: Int) -> URL {
        root.appendingPathComponent(CheckpointManifest.directoryName(step: step)).appendingPathComponent(CheckpointManifest.fileName)
    }

    func testAnEditedManifestIsRefused() throws {
        let (ws, _, root) = try trainedRun()
        defer { withExtendedLifetime(ws) {} }
        let url = manifestURL(root, 6)
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertTrue(text.contains("\"step\" : 6"))
        try text.replacingOccurrences(of: "\"step\" : 6", with: "\"step\" : 2").write(to: url, atomically: true, encoding: .utf8)
        assertRefused(try CheckpointStore.read(url.deletingLastPathComponent()), [url.path, "modified after it was written"])
    }

    func testAManifestMustAgreeWithItselfAndItsShards() throws {
        let (ws, o, root) = try trainedRun()
        defer { withExtendedLifetime(ws) {} }
        let url = manifestURL(root, 6), dir = url.deletingLastPathComponent()
        let original = try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: url))
        func reseal(_ edit: (inout CheckpointManifest) -> Void) throws {
            var m = original
            edit(&m)
            try m.sealed().write(to: url)
        }
        // A shard file outside the checkpoint directory.
        try reseal { $0.shards[0].file = "../../../../etc/passwd" }
        assertRefused(try CheckpointStore.read(dir), [url.path, "names the shard file '../../../../etc/passwd'"])
        // Step 2 claimed for step-6 data (sealed, so only the shard metadata can tell).
        try reseal { $0.step = 2; $0.state.counters.step = 2; $0.state.counters.adamStep = 2 }
        assertRefused(try CheckpointStore.read(dir), ["metadata says step 6 but the manifest says 2"])
        // AdamW step and skipped steps that do not add up.
        try reseal { $0.state.counters.adamStep = 5 }
        assertRefused(try CheckpointStore.read(dir), ["do not add up to step 6"])
        // The original, resealed, reads.
        try reseal { _ in }
        XCTAssertEqual(try CheckpointStore.read(dir).manifest.step, 6)
        // A format-1 manifest (no checksum) is still read, its shards still checked.
        try reseal { $0.format = CheckpointManifest.legacyFormatName; $0.manifestSHA256 = nil }
        var legacy = try String(contentsOf: url, encoding: .utf8)
        legacy = legacy.replacingOccurrences(of: #""manifest_sha256" : "[0-9a-f]*","#, with: "", options: .regularExpression)
        try legacy.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try CheckpointStore.read(dir).manifest.step, 6)
        // ...but a run does not continue from it: nothing vouches for its step, data position or options.
        var resumed = o; resumed.resume = dir.path
        assertRefused(try Trainer(options: resumed, comm: LocalCommunicator()), [url.path, "format", "export"])
    }

    /// A checksum proves only who wrote a manifest: resealed manifests with impossible counts, positions, ranks or
    /// sizes are refused naming the file, before anything of their sizes is allocated.
    func testResealedManifestsWithImpossibleFieldsAreRefusedBeforeAllocating() throws {
        let (ws, _, root) = try trainedRun()
        defer { withExtendedLifetime(ws) {} }
        let url = manifestURL(root, 6), dir = url.deletingLastPathComponent()
        let original = try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: url))
        func refusedAfter(_ edit: (inout CheckpointManifest) -> Void, _ fragments: [String], line: UInt = #line) throws {
            var m = original
            edit(&m)
            try m.sealed().write(to: url)
            assertRefused(try CheckpointStore.read(dir), [dir.path] + fragments, line: line)
        }
        // Negative skips that still add up to the step with the AdamW count.
        try refusedAfter({ $0.state.counters.skippedTotal = -1; $0.state.counters.adamStep = 7 }, ["impossible skip counts"])
        try refusedAfter({ $0.state.counters.consecutiveSkips = -2 }, ["impossible skip counts"])
        // trainable_count against the shards' counts, and the counts against the shards' bytes.
        try refusedAfter({ $0.trainableCount += 1 }, ["trainable_count \(original.trainableCount + 1)", "hold \(original.trainableCount)"])
        try refusedAfter({ $0.shards[0].bytes = 100 }, ["12 bytes per element"])
        try refusedAfter({ $0.shards[0].count = -5 }, ["-5 elements"])
        // A count the bytes field allows but the file on disk does not: refused by the file's size, unallocated.
        try refusedAfter({ $0.trainableCount = 1 << 58; $0.shards[0].count = 1 << 58; $0.shards[0].bytes = Int.max },
                         ["shard-00000-of-00001", "the manifest says \(Int.max)"])
        // The sampler: an epoch beyond the step.
        let s = original.state.sampler
        let late = try EpochSampler(datasetCount: s.datasetCount, seed: s.seed, globalBatch: s.globalBatch, epoch: 7, index: s.index)
        try refusedAfter({ $0.state.sampler = late }, ["epoch 7", "after 6 steps"])
        // Ranks: duplicated, or outside 0..<world_size.
        try refusedAfter({ $0.worldSize = 2; $0.shards = [$0.shards[0], $0.shards[0]] }, ["rank 0's shard twice"])
        try refusedAfter({ $0.shards[0].rank = 3 }, ["rank 3", "outside 0..<1"])
        // Format 2 without a data fingerprint.
        try refusedAfter({ $0.data = nil }, ["no data fingerprint"])
        // An index beyond the dataset, resealed by hand (the sampler type cannot hold one).
        try original.sealed().write(to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #""index" : [0-9]+"#, with: "\"index\" : 99999999", options: .regularExpression)
        XCTAssertNotEqual(edited, text)
        let blank = edited.replacingOccurrences(of: #""manifest_sha256" : "[0-9a-f]*""#, with: #""manifest_sha256" : """#,
                                                options: .regularExpression)
        let sum = SHA256.hash(data: Data(blank.utf8)).map { String(format: "%02x", $0) }.joined()
        try blank.replacingOccurrences(of: #""manifest_sha256" : """#, with: "\"manifest_sha256\" : \"\(sum)\"")
            .write(to: url, atomically: true, encoding: .utf8)
        assertRefused(try CheckpointStore.read(dir), [url.path, "99999999"])
        // The original, resealed, still reads.
        try original.sealed().write(to: url)
        XCTAssertEqual(try CheckpointStore.read(dir).manifest.step, 6)
    }

    /// The checksum covers the bytes as written, not this build's re-encoding: a manifest written by a build that
    /// knew fewer options (here: one option key absent, defaulted when read) still verifies, and an edit still fails.
    func testTheChecksumCoversTheBytesWrittenNotTheirReEncoding() throws {
        let (ws, _, root) = try trainedRun()
        defer { withExtendedLifetime(ws) {} }
        let url = manifestURL(root, 6), dir = url.deletingLastPathComponent()
        var text = try String(contentsOf: url, encoding: .utf8)
        let line = try XCTUnwrap(text.range(of: #"\n *"log_every" : [^\n]*,"#, options: .regularExpression),
                                 "no log_every option to drop in \(url.path)")
        text.removeSubrange(line)
        // Reseal as an older build would have: the checksum of its own bytes with the field blank.
        let blank = text.replacingOccurrences(of: #""manifest_sha256" : "[0-9a-f]*""#, with: #""manifest_sha256" : """#,
                                              options: .regularExpression)
        let sum = SHA256.hash(data: Data(blank.utf8)).map { String(format: "%02x", $0) }.joined()
        let older = blank.replacingOccurrences(of: #""manifest_sha256" : """#, with: "\"manifest_sha256\" : \"\(sum)\"")
        try older.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try CheckpointStore.read(dir).manifest.step, 6)
        try older.replacingOccurrences(of: "\"step\" : 6", with: "\"step\" : 5").write(to: url, atomically: true, encoding: .utf8)
        assertRefused(try CheckpointStore.read(dir), [url.path, "modified after it was written"])
    }

    func testResumeLatestWithOnlyInvalidCheckpointsRefusesAndChangesNothing() throws {
        let (ws, o, root) = try trainedRun()
        for step in [3, 6] {
            let shard = root.appendingPathComponent(CheckpointManifest.directoryName(step: step))
                .appendingPathComponent(CheckpointManifest.shardFileName(rank: 0, worldSize: 1))
            var bytes = try Data(contentsOf: shard); bytes[bytes.count - 3] ^= 1; try bytes.write(to: shard)
        }
        let before = fileHashes(ws.root.appendingPathComponent("ck"))
        var resumed = o; resumed.resume = "latest"
        assertRefused(try Trainer(options: resumed, comm: LocalCommunicator()),
                      ["no valid checkpoint among 2 committed ones", "step-00000003", "step-00000006", "SHA-256 mismatch", "--overwrite"])
        var after = fileHashes(ws.root.appendingPathComponent("ck")); after["run.lock"] = before["run.lock"]
        XCTAssertEqual(after, before)
    }

    func testResumeOnOtherDataOrHintsIsRefused() throws {
        let (ws, o, _) = try trainedRun()
        var sobel = o; sobel.resume = "latest"; sobel.hint = "sobel"; sobel.maxSteps = 8
        assertRefused(try Trainer(options: sobel, comm: LocalCommunicator()), ["other data", "--hint canny"])
        var other = o; other.resume = "latest"; other.maxSteps = 8
        other.data = try ws.writeDataset(seed: 43, name: "other.csv")
        assertRefused(try Trainer(options: other, comm: LocalCommunicator()), ["other data", "--data \(o.data)"])
        var same = o; same.resume = "latest"; same.maxSteps = 8
        XCTAssertEqual(try train(same).step.counters.step, 8)
    }

    func testRetentionRemovesOnlyThisRunsCommittedCheckpoints() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        for name in ["ours", "theirs"] {
            var o = ws.options(data: data, base: base, out: name, steps: 4)
            o.checkpointEvery = 1
            _ = try train(o)
        }
        let root = ws.root.appendingPathComponent("ours/checkpoints")
        let ours = try CheckpointStore.read(root.appendingPathComponent("step-00000004")).manifest.runID
        // Their step 2 replaces ours (another run's committed checkpoint), and step 3 loses its manifest (an
        // interrupted write, or a directory that only looks like one).
        try FileManager.default.removeItem(at: root.appendingPathComponent("step-00000002"))
        try FileManager.default.copyItem(at: ws.root.appendingPathComponent("theirs/checkpoints/step-00000002"),
                                         to: root.appendingPathComponent("step-00000002"))
        try FileManager.default.removeItem(at: manifestURL(root, 3))
        // Empty step directories (a kill during a removal leaves one): below the newest one goes, above it stays.
        for step in [0, 9] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(String(format: "step-%08d", step)),
                                                    withIntermediateDirectories: false)
        }
        let log = try RunLog(rank: 1, metricsURL: nil, keepStepsThrough: nil)
        CheckpointStore.applyTotalLimit(1, runID: try XCTUnwrap(ours), out: ws.root.appendingPathComponent("ours"),
                                        newest: root.appendingPathComponent("step-00000004"), log: log)
        let left = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        XCTAssertEqual(left, ["step-00000002", "step-00000003", "step-00000004", "step-00000009"],
                       "only our step 1 and the empty step 0 may go")
    }

    func testRetentionDeletesOnlyTheFilesItWroteAndKeepsForeignOnes() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "ours", steps: 4)
        o.checkpointEvery = 1
        _ = try train(o)
        let root = ws.root.appendingPathComponent("ours/checkpoints")
        // A user's notes in step 1 and a directory of theirs in step 2: retention must leave both, and the
        // directories that hold them.
        let notes = root.appendingPathComponent("step-00000001/notes.txt")
        try Data("mine".utf8).write(to: notes)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("step-00000002/keep/deeper"),
                                                withIntermediateDirectories: true)
        // A copy of our step 3 under another step's name, and a symbolic link to a checkpoint of ours kept
        // elsewhere: neither was written there by the run, so neither is deleted (nor what it points to).
        let fm = FileManager.default
        try fm.copyItem(at: root.appendingPathComponent("step-00000003"), to: root.appendingPathComponent("step-00000009"))
        let elsewhere = ws.root.appendingPathComponent("kept/step-00000002")
        try fm.createDirectory(at: elsewhere.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fm.copyItem(at: root.appendingPathComponent("step-00000002"), to: elsewhere)
        try fm.createSymbolicLink(at: root.appendingPathComponent("step-00000000"), withDestinationURL: elsewhere)
        let keptFiles = try fm.contentsOfDirectory(atPath: elsewhere.path).sorted()
        let runID = try XCTUnwrap(try CheckpointStore.read(root.appendingPathComponent("step-00000004")).manifest.runID)
        let log = try RunLog(rank: 1, metricsURL: nil, keepStepsThrough: nil)
        CheckpointStore.applyTotalLimit(1, runID: runID, out: ws.root.appendingPathComponent("ours"),
                                        newest: root.appendingPathComponent("step-00000004"), log: log)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: root.path).sorted(),
                       ["step-00000000", "step-00000001", "step-00000002", "step-00000004", "step-00000009"])
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: elsewhere.path).sorted(), keptFiles)
        XCTAssertEqual(try CheckpointStore.read(root.appendingPathComponent("step-00000009")).manifest.step, 3)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: root.appendingPathComponent("step-00000001").path), ["notes.txt"])
        XCTAssertEqual(try String(contentsOf: notes, encoding: .utf8), "mine")
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: root.appendingPathComponent("step-00000002").path), ["keep"])
        XCTAssertTrue(fm.fileExists(atPath: root.appendingPathComponent("step-00000002/keep/deeper").path))
        // The newest is whole; the emptied step 3 is gone; the leftovers are no longer checkpoints to resume, and
        // "latest" skips the copy named step 9 (its manifest says step 3) for the real newest, step 4.
        XCTAssertEqual(try CheckpointStore.read(root.appendingPathComponent("step-00000004")).manifest.step, 4)
        guard case .found(let latest, let skipped) = try CheckpointStore.resolve("latest", out: ws.root.appendingPathComponent("ours")) else {
            return XCTFail("no checkpoint found")
        }
        XCTAssertEqual(latest.directory.lastPathComponent, "step-00000004")
        XCTAssertTrue(skipped.contains { $0.contains("step-00000009") && $0.contains("a renamed copy") }, "\(skipped)")
        var resumed = o; resumed.resume = "latest"; resumed.maxSteps = 5
        XCTAssertEqual(try train(resumed).step.counters.step, 5)
    }
}
