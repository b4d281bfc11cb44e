// The run directory belongs to one run: reuse without --resume or --overwrite is refused (and changes nothing),
// --overwrite replaces the earlier run's outputs, a second run on a held directory is refused naming the holder,
// outputs may not be inputs, status.json says where the run stands, and a stop between micro-steps leaves a
// checkpoint from which the run resumes bit-identically.
import XCTest
import Foundation
import Datasets
import Distributed
import Model
import Training

final class RunDirectoryTests: XCTestCase {
    func testReusingARunDirectoryNeedsResumeOrOverwrite() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "run", steps: 4)
        o.checkpointEvery = 2
        _ = try train(o)
        let out = ws.root.appendingPathComponent("run")
        let before = fileHashes(out)
        var again = o; again.maxSteps = 2
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()), ["--out", "already holds a run", "--resume latest", "--overwrite"])
        var afterRefusal = fileHashes(out); afterRefusal["run.lock"] = before["run.lock"]
        XCTAssertEqual(afterRefusal, before, "a refused run changed the directory")
        // --overwrite replaces it: the old step-4 checkpoint is gone, the new run's step-2 one is there.
        again.overwrite = true
        _ = try train(again)
        let steps = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("checkpoints").path).sorted()
        XCTAssertEqual(steps, ["step-00000002"])
        XCTAssertEqual(RunStatus.read(from: out)?.state, .complete)
        XCTAssertEqual(RunStatus.read(from: out)?.step, 2)
    }

    func testASecondRunOnAHeldDirectoryIsRefusedNamingTheHolder() throws {
        let ws = try Workspace()
        let out = ws.root.appendingPathComponent("held")
        do {
            let holder = try RunDirectory.claim(out, resume: false, overwrite: false, log: { _ in })
            let text = assertRefused(try RunDirectory.claim(out, resume: false, overwrite: false, log: { _ in }),
                                     ["--out", "in use by another run", "pid \(getpid())"])
            XCTAssertTrue(text.contains(ProcessInfo.processInfo.hostName), text)
            withExtendedLifetime(holder) {}
        }
        // Released with its holder: the directory can be claimed again.
        XCTAssertNoThrow(try RunDirectory.claim(out, resume: false, overwrite: false, log: { _ in }))
    }

    func testOutputsMayNotBeInputs() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        // Base training that would write its result over the weights it starts from.
        var o = ws.options(data: data, base: nil, out: "b", steps: 2, mode: .base)
        _ = try train(o)
        let own = ws.path("b/unet.safetensors")
        o.initFrom = own; o.overwrite = true
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--out", own, "--init-from"])
        // A symlink is the same file.
        let link = ws.path("link.safetensors")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: base)
        XCTAssertTrue(PathGuard.same(link, base))
        assertRefused(try PathGuard.check(outputs: [("--grid", link)], inputs: [("--base", base)]), ["--grid", "--base"])
        // So is a hard link, and another spelling of the path.
        let hard = ws.path("hard.safetensors")
        try FileManager.default.linkItem(atPath: base, toPath: hard)
        XCTAssertTrue(PathGuard.same(hard, base))
        XCTAssertTrue(PathGuard.same(ws.root.path + "/./x/../" + URL(fileURLWithPath: base).lastPathComponent, base))
        // A file inside a checkpoint directory, for export.
        try FileManager.default.createDirectory(atPath: ws.path("ck"), withIntermediateDirectories: true)
        assertRefused(try PathGuard.check(outputs: [("--out", ws.path("ck/shard.safetensors"))], inputs: [("checkpoint", ws.path("ck"))]),
                      ["--out", "checkpoint"])
        XCTAssertNoThrow(try PathGuard.check(outputs: [("--out", ws.path("other.safetensors"))], inputs: [("--base", base)]))
    }

    func testOutputsThatExistAndAreNotRegularFilesAreRefusedNamingTheOption() throws {
        let ws = try Workspace()
        // A device takes (or refuses) the bytes only after all the work.
        if FileManager.default.fileExists(atPath: "/dev/full") {
            assertRefused(try PathGuard.checkKinds([("--json", "/dev/full")]), ["--json", "/dev/full", "character device"])
        }
        let fifo = ws.path("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertRefused(try PathGuard.checkKinds([("--grid", fifo)]), ["--grid", fifo, "FIFO"])
        // A directory where a file is written, and a file where a directory is.
        assertRefused(try PathGuard.checkKinds([("--out", ws.root.path)]), ["--out", "is a directory"])
        let file = ws.path("file")
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        assertRefused(try PathGuard.checkKinds([("--out", file)], directories: [file]), ["--out", "is a file"])
        // The check() every command calls includes it.
        assertRefused(try PathGuard.check(outputs: [("--grid", fifo)], inputs: []), ["--grid", "FIFO"])
        XCTAssertNoThrow(try PathGuard.checkKinds([("--out", file), ("--grid", ws.path("new.png"))]))
        XCTAssertNoThrow(try PathGuard.checkKinds([("--out", ws.root.path)], directories: [ws.root.path]))
        // A training run whose --out holds a FIFO named like an output is refused before any work.
        let data = try ws.writeDataset(), base = try ws.writeBase()
        let o = ws.options(data: data, base: base, out: "r", steps: 1)
        try FileManager.default.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(o.out + "/metrics.jsonl", 0o600), 0)
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--out", "metrics.jsonl", "FIFO"])
    }

    func testDataFilesAndEveryCheckpointFileAreInputsEvenThroughHardLinks() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        // --data: the CSV itself; mnist5k: the CSV in --data-dir; IDX: its test and labels files beside it.
        XCTAssertEqual(DataSpec(source: "mnist5k", directory: "/d", resize: false).inputFiles, ["/d/mnist_5k.csv.gz"])
        XCTAssertEqual(Set(DataSpec(source: "/x/train-images-idx3-ubyte", directory: "d", resize: false).inputFiles),
                       ["/x/train-images-idx3-ubyte", "/x/t10k-images-idx3-ubyte", "/x/train-labels-idx1-ubyte",
                        "/x/t10k-labels-idx1-ubyte"])
        let dataLink = ws.path("data-link.csv")
        try FileManager.default.linkItem(atPath: data, toPath: dataLink)
        let spec = DataSpec(source: data, directory: "data", resize: true)
        assertRefused(try PathGuard.check(outputs: [("--grid", dataLink)], inputs: spec.inputFiles.map { ("--data", $0) }),
                      ["--grid", "--data"])
        // export: the manifest and every shard, each through a hard link elsewhere.
        var o = ws.options(data: data, base: base, out: "r", steps: 2)
        o.checkpointEvery = 2
        _ = try train(o)
        let loaded = try CheckpointStore.locate("latest:" + o.out) { _ in }
        let files = CheckpointStore.files(of: loaded)
        XCTAssertEqual(files.count, 3, "\(files)")   // directory, manifest, one shard
        for (i, f) in files.dropFirst().enumerated() {
            let link = ws.path("link-\(i).safetensors")
            try FileManager.default.linkItem(atPath: f, toPath: link)
            assertRefused(try PathGuard.check(outputs: [("--out", link)], inputs: files.map { ("checkpoint", $0) }),
                          ["--out", "checkpoint"])
        }
        XCTAssertNoThrow(try PathGuard.check(outputs: [("--out", ws.path("export.safetensors"))],
                                             inputs: files.map { ("checkpoint", $0) }))
    }

    func testStopBetweenMicroStepsCheckpointsAndResumesExactly() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "full", steps: 4)
        o.gradAccum = 3; o.checkpointEvery = 100
        let full = try train(o)
        // The same run asked to stop during step 3 (after its first micro-step): no update for step 3, a
        // checkpoint of step 2, status "stopped", no final weights.
        var stopped = o; stopped.out = ws.path("stopped")
        let t = try Trainer(options: stopped, comm: LocalCommunicator())
        var calls = 0
        let result = try t.run(stopRequested: { calls += 1; return t.step.counters.step == 2 && calls > 6 })
        XCTAssertTrue(result.stoppedEarly)
        XCTAssertEqual(t.step.counters.step, 2)
        let out = ws.root.appendingPathComponent("stopped")
        let status = try XCTUnwrap(RunStatus.read(from: out))
        XCTAssertEqual(status.state, .stopped); XCTAssertEqual(status.step, 2)
        XCTAssertTrue(status.checkpoint?.hasSuffix("step-00000002") ?? false, "\(status)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("controlnet.safetensors").path))
        var resumed = stopped; resumed.resume = "latest"
        let r = try train(resumed)
        XCTAssertEqual(r.model.params.array.map(\.bitPattern), full.model.params.array.map(\.bitPattern))
        XCTAssertEqual(RunStatus.read(from: out)?.state, .complete)
    }

    func testMetricsStayLineValidAndAResumeDropsTheReplayedSteps() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "m", steps: 6)
        o.checkpointEvery = 3
        _ = try train(o)
        // Simulate a crash after step 6's record was half written and step 3's checkpoint is the newest.
        let metrics = ws.path("m/metrics.jsonl")
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: metrics))
        handle.seekToEndOfFile(); handle.write(Data("{\"step\": 7, \"lo".utf8)); try handle.close()
        try FileManager.default.removeItem(atPath: ws.path("m/checkpoints/step-00000006"))
        var resumed = o; resumed.resume = "latest"
        _ = try train(resumed)
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
        let steps = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["step"] as? Int }
        XCTAssertEqual(steps, [1, 2, 3, 4, 5, 6], "every line parses; steps 4-6 appear once")
    }
}
