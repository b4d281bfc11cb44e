// The trainer in one process: simulated ranks, the non-finite guard, exact resume from a checkpoint, refusals,
// and the frozen base.
import XCTest
import Foundation
import Distributed
import Kernels
import Model
import Training

final class TrainerTests: XCTestCase {
    func testSimulatedRanksAverageGradientsLikeOneBigBatchSplit() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var two = ws.options(data: data, base: base, out: "sim2", steps: 3)
        two.simulateRanks = 2
        let a = try train(two)
        // The same 8 samples per step as one rank of batch 8: the slot-keyed noise makes the two runs equal up to
        // the order of floating-point sums.
        var one = ws.options(data: data, base: base, out: "one8", steps: 3)
        one.batchSize = 8
        let b = try train(one)
        var maxDiff: Float = 0
        for i in 0..<a.model.params.count { maxDiff = max(maxDiff, abs(a.model.params.pointer[i] - b.model.params.pointer[i])) }
        XCTAssertLessThan(maxDiff, 1e-5, "simulate-ranks 2 x 4 vs 1 x 8 differ by \(maxDiff)")
        // And differ from a run that saw other data (the comparison can fail).
        var other = one; other.seed = 9; other.out = ws.path("other")
        let c = try train(other)
        var otherDiff: Float = 0
        for i in 0..<a.model.params.count { otherDiff = max(otherDiff, abs(a.model.params.pointer[i] - c.model.params.pointer[i])) }
        XCTAssertGreaterThan(otherDiff, 1e-4)
    }

    func testNonFiniteStepIsSkippedAndTenInARowAbort() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "nan", steps: 4)
        o.injectNonfinite = ["2"]
        let t = try train(o)
        XCTAssertEqual(t.state.skippedTotal, 1)
        XCTAssertEqual(t.state.adamStep, 3)
        XCTAssertTrue(Elementwise.allFinite(count: t.model.params.count, t.model.params.pointer))
        var bad = ws.options(data: data, base: base, out: "nan10", steps: 20)
        bad.injectNonfinite = (2...11).map(String.init)
        XCTAssertThrowsError(try train(bad)) { XCTAssertTrue("\($0)".contains("10 consecutive"), "\($0)") }
    }

    func testResumeFromCheckpointIsBitExact() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var full = ws.options(data: data, base: base, out: "full", steps: 6)
        full.checkpointEvery = 3
        let a = try train(full)
        // Resume a second run from the step-3 checkpoint of the first.
        var resumed = full; resumed.out = ws.path("resumed")
        try ws.seedCheckpoint("step-00000003", from: "full", to: "resumed")
        resumed.resume = "latest"
        let b = try train(resumed)
        let resumedLine = try String(contentsOfFile: ws.path("resumed/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(resumedLine.contains("\"step\":4"), "the resumed run's first record is step 4: \(resumedLine)")
        XCTAssertEqual(a.model.params.array.map(\.bitPattern), b.model.params.array.map(\.bitPattern), "weights")
        XCTAssertEqual(a.step.m.array.map(\.bitPattern), b.step.m.array.map(\.bitPattern), "AdamW m")
        XCTAssertEqual(a.step.v.array.map(\.bitPattern), b.step.v.array.map(\.bitPattern), "AdamW v")
        XCTAssertEqual(a.state.counters, b.state.counters)
        XCTAssertEqual(a.state.sampler, b.state.sampler)
    }

    func testCorruptTruncatedAndMismatchedCheckpointsAreRefused() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "ck", steps: 2)
        o.checkpointEvery = 1
        _ = try train(o)
        let dir = ws.root.appendingPathComponent("ck/checkpoints/step-00000002")
        let shard = dir.appendingPathComponent(CheckpointManifest.shardFileName(rank: 0, worldSize: 1))
        XCTAssertNoThrow(try CheckpointStore.read(dir))
        // Another base model: refused, naming the manifest.
        var other = o; other.base = try ws.writeBase(seed: 99); other.out = ws.path("ck"); other.resume = "latest"
        XCTAssertThrowsError(try Trainer(options: other, comm: LocalCommunicator())) {
            XCTAssertTrue("\($0)".contains("another base model") && "\($0)".contains("manifest.json"), "\($0)")
        }
        // A flipped byte.
        var bytes = try Data(contentsOf: shard)
        bytes[bytes.count - 5] ^= 0x40
        try bytes.write(to: shard)
        XCTAssertThrowsError(try CheckpointStore.read(dir)) {
            XCTAssertTrue("\($0)".contains("SHA-256 mismatch") && "\($0)".contains(shard.lastPathComponent), "\($0)")
        }
        // Truncated.
        try bytes.prefix(bytes.count / 2).write(to: shard)
        XCTAssertThrowsError(try CheckpointStore.read(dir)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        // Missing.
        try FileManager.default.removeItem(at: shard)
        XCTAssertThrowsError(try CheckpointStore.read(dir)) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
        // latest falls back to the previous valid checkpoint.
        guard case .found(let latest, let skipped) = try CheckpointStore.resolve("latest", out: ws.root.appendingPathComponent("ck")) else {
            return XCTFail("no checkpoint found")
        }
        XCTAssertTrue(skipped.contains { $0.contains("step-00000002") }, "\(skipped)")
        XCTAssertEqual(latest.manifest.step, 1)
    }

    func testBaseTrainingLowersTheLossAndControlNetTrainingLeavesTheBaseAlone() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset()
        var o = ws.options(data: data, base: nil, out: "base", steps: 40, mode: .base)
        o.lr = 3e-3; o.batchSize = 8
        let t = try train(o)
        let metrics = try String(contentsOfFile: ws.path("base/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let losses = metrics.compactMap { $0["loss"] as? Double }
        XCTAssertEqual(losses.count, 40)
        XCTAssertLessThan(losses.suffix(5).reduce(0, +) / 5, 0.7 * losses.prefix(3).reduce(0, +) / 3, "\(losses)")
        // The trained base, frozen under a ControlNet, comes out bit-identical.
        let basePath = ws.path("base/unet.safetensors")
        XCTAssertTrue(FileManager.default.fileExists(atPath: basePath))
        let c = try train(ws.options(data: data, base: basePath, out: "control", steps: 3))
        let m = try XCTUnwrap(c.model as? ControlNetTraining)
        XCTAssertEqual(m.base.array.map(\.bitPattern), (t.model as! BaseTraining).params.array.map(\.bitPattern))
    }

    func testOptionValidationNamesTheOption() throws {
        var o = TrainOptions()
        o.mode = .controlnet
        XCTAssertThrowsError(try o.validate(config: .tiny)) { XCTAssertEqual(($0 as? OptionsError)?.option, "--base") }
        o.base = "x"; o.epochs = 1; o.maxSteps = 2
        XCTAssertThrowsError(try o.validate(config: .tiny)) { XCTAssertEqual(($0 as? OptionsError)?.option, "--epochs") }
        o.epochs = nil; o.promptDropout = 0.1
        XCTAssertThrowsError(try o.validate(config: .tiny)) { XCTAssertEqual(($0 as? OptionsError)?.option, "--prompt-dropout") }
        XCTAssertNoThrow(try o.validate(config: .tinyClass))
        o.gradAccum = 0
        XCTAssertThrowsError(try o.validate(config: .tinyClass)) { XCTAssertEqual(($0 as? OptionsError)?.option, "--grad-accum") }
    }

    func testLearningRateSchedule() {
        let cos = LRSchedule(base: 1, warmup: 10, total: 110, kind: .cosine, minFraction: 0.1)
        XCTAssertEqual(cos.lr(at: 1), 0.1, accuracy: 1e-12)
        XCTAssertEqual(cos.lr(at: 10), 1, accuracy: 1e-12)
        XCTAssertEqual(cos.lr(at: 60), 0.55, accuracy: 1e-12)
        XCTAssertEqual(cos.lr(at: 110), 0.1, accuracy: 1e-12)
        let constant = LRSchedule(base: 2, warmup: 0, total: 5, kind: .constant, minFraction: 0)
        XCTAssertEqual(constant.lr(at: 5), 2)
    }
}
