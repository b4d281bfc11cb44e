// --precision as an option of a run: recorded in the options (default fp32, also for options written before it
// existed), compared across ranks like every option, but not part of what a checkpoint belongs to, so a run may
// resume in the other precision (weights, AdamW moments and checkpoints are fp32 either way).
import XCTest
import Foundation
import Distributed
import Kernels
import Model
import Training

final class PrecisionOptionTests: XCTestCase {
    func testPrecisionDefaultsToFp32AndIsRecorded() throws {
        XCTAssertEqual(TrainOptions().precision, .fp32)
        // Options recorded before the key existed read as fp32.
        let old = try JSONDecoder().decode(TrainOptions.self, from: Data(#"{"mode": "controlnet", "lr": 0.001}"#.utf8))
        XCTAssertEqual(old.precision, .fp32)
        var o = TrainOptions()
        o.precision = .bf16
        let back = try JSONDecoder().decode(TrainOptions.self, from: try JSONEncoder().encode(o))
        XCTAssertEqual(back.precision, .bf16)
        XCTAssertTrue(o.jsonDescription.contains("\"precision\" : \"bf16\""), o.jsonDescription)
        XCTAssertEqual(o.stepSettings(totalSteps: 1).precision, .bf16)
        // Every rank must agree on it: it is one of the values RankAgreement compares.
        let values = RankAgreement.optionValues(o)
        XCTAssertEqual(values.first { $0.key == "precision" }?.value, "\"bf16\"")
        XCTAssertEqual(RankAgreement.flag("precision"), "--precision")
    }

    func testARunResumesInTheOtherPrecision() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var fp32 = ws.options(data: data, base: base, out: "run", steps: 2)
        fp32.checkpointEvery = 2
        _ = try train(fp32)
        var bf16 = fp32
        bf16.maxSteps = 4; bf16.resume = "latest"; bf16.precision = .bf16
        let resumed = try train(bf16)
        XCTAssertEqual(resumed.state.counters.step, 4)
        XCTAssertEqual(resumed.model.precision, .bf16)
        XCTAssertTrue(Elementwise.allFinite(count: resumed.model.params.count, resumed.model.params.pointer))
        // and back to fp32 from the bf16 run's checkpoint
        var again = bf16
        again.maxSteps = 6; again.precision = .fp32; again.checkpointEvery = 2
        let last = try train(again)
        XCTAssertEqual(last.state.counters.step, 6)
        XCTAssertEqual(last.model.precision, .fp32)
    }

    func testBF16TrainingLowersTheLoss() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "bf16", steps: 30)
        o.precision = .bf16; o.lr = 3e-3
        let t = try train(o)
        let lines = try String(contentsOfFile: ws.path("bf16/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        func loss(_ line: Substring) -> Double? {
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return object["loss"] as? Double
        }
        let losses = lines.compactMap(loss)
        XCTAssertGreaterThan(losses.count, 20)
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(last, first, "bf16 ControlNet training lowers the loss (\(first) -> \(last))")
        XCTAssertEqual(t.model.precision, .bf16)
    }
}
