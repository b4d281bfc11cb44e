// The training step's objective against PyTorch (rtol 1e-4, atol 1e-5): TrainingStep.accumulate - the code the
// trainer runs - on the fixture's batch gives PyTorch's loss and every gradient, for base training (every UNet
// weight) and ControlNet training (every ControlNet weight, through the frozen UNet), on the tiny and tiny-class
// configs, under each instruction-set variant of the C kernels this machine runs.
import XCTest
import Distributed
import Kernels
import Model
import TestSupport
import Training

final class StepReferenceTests: XCTestCase {
    private func eachFixture(_ body: (Fixture, inout [CloseReport]) throws -> Void) throws {
        defer { try? KernelISA.select("auto") }
        for isa in KernelISA.supported {
            try KernelISA.select(isa)
            for name in ["tiny", "tiny-class"] {
                let f = try Fixture(name)
                var reports: [CloseReport] = []
                try body(f, &reports)
                let worst = reports.max { $0.worstRatio < $1.worstRatio }!
                print("[\(name), \(isa)] \(reports.count) tensors compared; worst: \(worst)")
            }
        }
    }

    /// The fixture's batch as the step reads it (x_t is the objective's to fill).
    private func batch(_ f: Fixture, _ keep: inout [FloatBuffer]) -> TrainingBatch {
        let x0 = FloatBuffer(f.x0), eps = FloatBuffer(f.eps), hint = FloatBuffer(f.hint)
        let xT = FloatBuffer(count: f.x0.count)
        keep = [x0, eps, hint, xT]
        return TrainingBatch(x0: x0.pointer, eps: eps.pointer, xT: xT.pointer, hint: hint.pointer, t: f.t, labels: f.labels)
    }

    private func step(_ model: TrainingModel) -> TrainingStep {
        TrainingStep(model: model, comm: LocalCommunicator(),
                     settings: StepSettings(schedule: LRSchedule(base: 1e-3, warmup: 0, total: 1, kind: .constant, minFraction: 0)))
    }

    func testBaseTrainingLossAndEveryGradientMatchPyTorch() throws {
        try eachFixture { f, reports in
            let model = BaseTraining(config: f.config)
            model.params.copy(from: f.unetParams)
            var keep: [FloatBuffer] = []
            let loss = step(model).accumulate(batch(f, &keep), lossScale: 1)
            reports.append(assertClose([loss], try f.expect("base_loss"), "base_loss"))
            for e in model.unet.table.entries {
                let got = Array(UnsafeBufferPointer(start: model.grads.pointer + e.offset, count: e.count))
                reports.append(assertClose(got, try f.expect("grad.unet." + e.name), "grad.unet." + e.name))
            }
        }
    }

    func testControlNetLossAndEveryGradientMatchPyTorch() throws {
        try eachFixture { f, reports in
            let model = ControlNetTraining(config: f.config, base: f.unetParams, seed: 0)
            model.params.copy(from: f.controlParams)
            var keep: [FloatBuffer] = []
            let loss = step(model).accumulate(batch(f, &keep), lossScale: 1)
            reports.append(assertClose([loss], try f.expect("loss"), "loss"))
            for e in model.control.table.entries {
                let got = Array(UnsafeBufferPointer(start: model.grads.pointer + e.offset, count: e.count))
                reports.append(assertClose(got, try f.expect("grad.control." + e.name), "grad.control." + e.name))
            }
        }
    }
}
