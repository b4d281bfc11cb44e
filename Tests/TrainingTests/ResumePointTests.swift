// A run continues only from a checkpoint that loses nothing: not one past its last step (its final weights would be
// that checkpoint's), not one named for another step, and not an older one while later checkpoints sit in the run
// directory (--resume latest would later pick those up, and --checkpoints-total-limit would delete the new ones).
// Resumed at its last step, a run trains nothing and writes the weights. Inputs that are only read for validation
// previews, and an empty --out, are refused before the run directory is touched.
import XCTest
import Foundation
import Distributed
import SafeTensors
import Training

final class ResumePointTests: XCTestCase {
    func testOnlyACheckpointThatLosesNothingIsResumed() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "run", steps: 6)
        o.checkpointEvery = 2
        o.checkpointsTotalLimit = 3
        _ = try train(o)
        let out = ws.root.appendingPathComponent("run")
        let before = fileHashes(out)
        func unchanged(_ what: String) {
            var after = fileHashes(out)
            after["run.lock"] = before["run.lock"]
            XCTAssertEqual(after, before, "\(what) changed the run directory")
        }

        // An older checkpoint while later ones are there (a different continuation: here another --max-steps).
        var again = o
        again.resume = ws.path("run/checkpoints/step-00000002")
        again.maxSteps = 5
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()),
                      ["--resume", "past step 2", "step-00000004, step-00000006", "--resume latest", "Move them out"])
        unchanged("a refused resume from an older checkpoint")

        // A checkpoint past the run's last step.
        again.resume = ws.path("run/checkpoints/step-00000006")
        again.maxSteps = 4
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()),
                      ["--max-steps", "ends at step 4", "already at step 6", "--max-steps 6 or more"])
        unchanged("a refused resume past the last step")
        // With --epochs the step count follows the global batch: the advice is --max-steps, not --max-steps beside it.
        again.maxSteps = nil
        again.epochs = 0.05
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()),
                      ["--epochs", "already at step 6", "4 per rank x 1 ranks", "Replace --epochs with --max-steps 6"])
        again.epochs = nil

        // A checkpoint directory named for another step than its manifest records.
        let renamed = ws.root.appendingPathComponent("elsewhere/step-00000009")
        try FileManager.default.createDirectory(at: renamed.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: out.appendingPathComponent("checkpoints/step-00000004"), to: renamed)
        again.resume = renamed.path
        again.maxSteps = 10
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()),
                      [renamed.path, "named for step 9", "records step 4", "step-00000004"])
        unchanged("a refused resume from a renamed checkpoint")

        // A path that is not there, or a file: said so, not "an interrupted write".
        again.resume = ws.path("run/checkpoints/step-00000099")
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()), ["step-00000099", "does not exist"])
        again.resume = ws.path("run/controlnet.safetensors")
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()), ["controlnet.safetensors", "is a file"])

        // At its last step, --resume latest (a requeued job after the run ended) trains nothing and keeps the weights.
        let weights = out.appendingPathComponent("controlnet.safetensors")
        let finished = try SafeTensorsFile(data: Data(contentsOf: weights), url: weights)
        again.resume = "latest"
        again.maxSteps = 6
        let trainer = try Trainer(options: again, comm: LocalCommunicator())
        let result = try trainer.run()
        XCTAssertEqual(result.steps, 6)
        let rewritten = try SafeTensorsFile(data: Data(contentsOf: weights), url: weights)
        XCTAssertTrue(try WeightDiff.compare(finished, rewritten, nameA: "run", nameB: "resumed").bitIdentical,
                      "the weights written from the step-6 checkpoint are the run's")
        XCTAssertEqual(RunStatus.read(from: out)?.state, .complete)
        let kept = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("checkpoints").path).sorted()
        XCTAssertEqual(kept, ["step-00000002", "step-00000004", "step-00000006"])
    }

    func testValidationInputsAndAnEmptyOutAreRefusedBeforeTheRunDirectoryIsTouched() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "run", steps: 2)
        o.validationSteps = 1
        o.validationData = ws.path("no-such-dataset.csv")
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--validation-data", "no-such-dataset.csv"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: ws.path("run")), "a refused run created its directory")

        o.validationData = nil
        o.out = ""
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--out", "is empty"])
    }

    func testAnEMARunResumesOnlyWithItsDecay() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "ema", steps: 2)
        o.checkpointEvery = 2
        o.emaDecay = 0.9
        _ = try train(o)
        var again = o
        again.resume = "latest"
        again.maxSteps = 4
        again.emaDecay = nil
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()), ["keeps an EMA", "--ema-decay 0.9"])
        again.emaDecay = 0.5
        assertRefused(try Trainer(options: again, comm: LocalCommunicator()), ["--ema-decay 0.9", "asks for 0.5"])
        again.emaDecay = 0.9
        XCTAssertEqual(try train(again).step.counters.step, 4)
    }
}
