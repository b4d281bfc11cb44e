// --precision bf16 against PyTorch's float32 fixtures, tensor by tensor within bf16's tolerance (relative L2 errors,
// TestSupport/RelativeL2.swift: 2^-5 for values, 2^-3 per gradient tensor and 2^-5 for the whole gradient):
// the UNet's output, every ControlNet residual and the controlled output;
// the loss and every gradient of base and ControlNet training through the real TrainingStep; and one whole step
// (AdamW on our own bf16 gradients). Each runs under every instruction-set variant of the C kernels and every bf16
// GEMM kernel this machine runs (the FMA emulations and, where present, VDPBF16PS), so each dispatch path is
// checked. fp32 stays checked element-wise at 1e-5 by ReferenceTests and StepReferenceTests, unchanged.
import XCTest
import Distributed
import Kernels
import Model
import TestSupport
import Training

final class BF16ReferenceTests: XCTestCase {
    override func tearDown() {
        try? KernelISA.select("auto")
        try? BF16Kernel.select("auto")
    }

    /// Runs `body` for each fixture under each (C-kernel ISA, bf16 kernel) pair; prints the worst tensor.
    private func eachPath(_ body: (Fixture, inout [L2Report]) throws -> Void) throws {
        for isa in KernelISA.supported {
            try KernelISA.select(isa)
            for kernel in BF16Kernel.supported {
                try BF16Kernel.select(kernel)
                for name in ["tiny", "tiny-class"] {
                    let f = try Fixture(name)
                    var reports: [L2Report] = []
                    try body(f, &reports)
                    let worst = reports.max { $0.relative < $1.relative }!
                    print("[bf16 \(name), \(isa), \(kernel)] \(reports.count) tensors; worst: \(worst)")
                }
            }
        }
    }

    private func xT(_ f: Fixture) -> [Float] {
        var out = [Float](repeating: 0, count: f.x0.count)
        NoiseSchedule().qSample(x0: f.x0, eps: f.eps, t: f.t, perSample: f.perSample, into: &out)
        return out
    }

    func testForwardMatchesPyTorch() throws {
        try eachPath { f, reports in
            let xb = FloatBuffer(xT(f)), hb = FloatBuffer(f.hint), arenas = StepArenas()
            defer { withExtendedLifetime((xb, hb, arenas)) {} }
            let n = f.batch * f.perSample
            let frozen = WeightSource(params: f.unetParams.pointer, grads: nil, precision: .bf16)
            let cws = WeightSource(params: f.controlParams.pointer, grads: nil, precision: .bf16)
            let plain = f.unet.forward(frozen, x: xb.pointer, t: f.t, labels: f.labels, arenas: arenas)
            reports.append(assertRelativeL2(Array(UnsafeBufferPointer(start: plain, count: n)), try f.expect("unet_out"),
                                            rel: BF16Tolerance.forward, "unet_out"))
            let residuals = f.control.forward(cws, x: xb.pointer, hint: hb.pointer, t: f.t, labels: f.labels,
                                              arenas: arenas)
            for (k, r) in residuals.enumerated() {
                let expected = try f.expect("residual.\(k)")
                reports.append(assertRelativeL2(Array(UnsafeBufferPointer(start: r, count: expected.count)), expected,
                                                rel: BF16Tolerance.forward, "residual.\(k)"))
            }
            let out = f.unet.forward(frozen, x: xb.pointer, t: f.t, labels: f.labels,
                                     controls: [ControlResiduals(residuals: residuals, scale: 1)], arenas: arenas)
            reports.append(assertRelativeL2(Array(UnsafeBufferPointer(start: out, count: n)),
                                            try f.expect("controlled_out"), rel: BF16Tolerance.forward, "controlled_out"))
        }
    }

    private func batch(_ f: Fixture, _ keep: inout [FloatBuffer]) -> TrainingBatch {
        let x0 = FloatBuffer(f.x0), eps = FloatBuffer(f.eps), hint = FloatBuffer(f.hint)
        let xT = FloatBuffer(count: f.x0.count)
        keep = [x0, eps, hint, xT]
        return TrainingBatch(x0: x0.pointer, eps: eps.pointer, xT: xT.pointer, hint: hint.pointer, t: f.t, labels: f.labels)
    }

    /// The fixture's optimizer: AdamW lr 1e-3, betas 0.9 / 0.999, eps 1e-8, weight decay 1e-2, no clipping.
    private func step(_ model: TrainingModel) -> TrainingStep {
        var settings = StepSettings(schedule: LRSchedule(base: 1e-3, warmup: 0, total: 1, kind: .constant, minFraction: 0))
        settings.maxGradNorm = nil
        settings.adam = AdamWConfig(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2)
        settings.precision = .bf16
        return TrainingStep(model: model, comm: LocalCommunicator(), settings: settings)
    }

    /// Every gradient tensor within BF16Tolerance.gradientTensor, all of them as one vector within gradientWhole.
    private func gradients(_ table: ParameterTable, _ grads: FloatBuffer, _ f: Fixture, prefix: String,
                           _ reports: inout [L2Report]) throws {
        var all: [Float] = [], allWant: [Float] = []
        for e in table.entries {
            let got = Array(UnsafeBufferPointer(start: grads.pointer + e.offset, count: e.count))
            let want = try f.expect(prefix + e.name)
            reports.append(assertRelativeL2(got, want, rel: BF16Tolerance.gradientTensor, prefix + e.name))
            all += got; allWant += want
        }
        let whole = assertRelativeL2(all, allWant, rel: BF16Tolerance.gradientWhole, prefix + "* (all as one vector)")
        print("  \(whole)")
    }

    func testBaseTrainingLossAndEveryGradientMatchPyTorch() throws {
        try eachPath { f, reports in
            let model = BaseTraining(config: f.config)
            model.params.copy(from: f.unetParams)
            var keep: [FloatBuffer] = []
            let s = step(model)
            XCTAssertEqual(model.precision, .bf16, "the step sets the model's precision")
            let loss = s.accumulate(batch(f, &keep), lossScale: 1)
            reports.append(assertRelativeL2([loss], try f.expect("base_loss"), rel: BF16Tolerance.forward, "base_loss"))
            try gradients(model.unet.table, model.grads, f, prefix: "grad.unet.", &reports)
        }
    }

    func testControlNetLossAndEveryGradientMatchPyTorch() throws {
        try eachPath { f, reports in
            let model = ControlNetTraining(config: f.config, base: f.unetParams, seed: 0)
            model.params.copy(from: f.controlParams)
            var keep: [FloatBuffer] = []
            let loss = step(model).accumulate(batch(f, &keep), lossScale: 1)
            reports.append(assertRelativeL2([loss], try f.expect("loss"), rel: BF16Tolerance.forward, "loss"))
            try gradients(model.control.table, model.grads, f, prefix: "grad.control.", &reports)
        }
    }

    /// One whole step (forward, backward, all-reduce, AdamW) on our bf16 gradients against PyTorch's step on its
    /// float32 ones. The weights after the step are compared as tensors (BF16Tolerance.forward); besides, the
    /// update itself (after - before; ~lr sign(g) in AdamW's first step) must agree with PyTorch's within
    /// BF16Tolerance.update over the whole network (PyTorch's own bf16 autocast step: 0.176).
    func testOneStepMatchesPyTorch() throws {
        try eachPath { f, reports in
            let model = ControlNetTraining(config: f.config, base: f.unetParams, seed: 0)
            model.params.copy(from: f.controlParams)
            let before = model.params.array
            var keep: [FloatBuffer] = []
            let outcome = try step(model).run(FixedBatch(batch(f, &keep)))
            XCTAssertFalse(outcome.skipped)
            var ours: [Float] = [], theirs: [Float] = []
            for e in model.control.table.entries {
                let got = Array(UnsafeBufferPointer(start: model.params.pointer + e.offset, count: e.count))
                let want = try f.expect("adamw.control." + e.name)
                reports.append(assertRelativeL2(got, want, rel: BF16Tolerance.forward, "adamw.control." + e.name))
                for i in 0..<e.count {
                    ours.append(got[i] - before[e.offset + i]); theirs.append(want[i] - before[e.offset + i])
                }
            }
            let update = assertRelativeL2(ours, theirs, rel: BF16Tolerance.update, "the update of every weight")
            print("[bf16 \(f.config.numClasses > 0 ? "tiny-class" : "tiny")] \(update)")
        }
    }
}

/// The fixture's batch for every step.
private final class FixedBatch: BatchSource {
    let b: TrainingBatch
    init(_ b: TrainingBatch) { self.b = b }
    func batch(step: Int, micro: Int, rank: Int, worldSize: Int) -> TrainingBatch { b }
}
