// The consistency loss: every extractor's gradient against central finite differences; the whole added loss's
// gradient with respect to ControlNet weights (through the frozen UNet) against finite differences of the
// objective itself; weight 0 is exactly the plain run; and the hint kinds without a differentiable form are
// refused by name.
import XCTest
import Foundation
import Datasets
import Distributed
import Kernels
import Model
import Randomness
@testable import Training

final class ConsistencyLossTests: XCTestCase {
    /// loss(forward(image), hint), and its gradient with respect to the image through backward.
    private func lossAndGradient(_ e: ConditionExtractor, _ image: [Float], _ hint: [Float], _ S: Int) -> (Double, [Float]) {
        var map = [Float](repeating: 0, count: S * S), dMap = map, dImage = map
        image.withUnsafeBufferPointer { im in
            e.forward(im.baseAddress!, height: S, width: S, into: &map)
        }
        let loss = map.withUnsafeBufferPointer { m in
            hint.withUnsafeBufferPointer { h in e.loss(m.baseAddress!, hint: h.baseAddress!, count: S * S, dMap: &dMap) }
        }
        image.withUnsafeBufferPointer { im in
            dMap.withUnsafeBufferPointer { d in e.backward(im.baseAddress!, height: S, width: S, dOut: d.baseAddress!, dImage: &dImage) }
        }
        return (loss, dImage)
    }

    func testEveryExtractorsGradientMatchesFiniteDifferences() {
        let S = 10
        var rng = RandomStream(seed: 17)
        // A smooth blob plus noise on the 0...255 scale, so edges are neither all on nor all off.
        let image = (0..<(S * S)).map { k -> Float in
            let y = Float(k / S) - 4.5, x = Float(k % S) - 4.5
            return 255 / (1 + exp((y * y + x * x - 9) / 2)) + Float(rng.uniform() * 20)
        }
        let binaryHint = (0..<(S * S)).map { _ in rng.uniform() > 0.7 ? Float(1) : 0 }
        let softHint = (0..<(S * S)).map { _ in Float(rng.uniform()) }
        for e in [ConditionExtractor.edges, .sobel, .mask, .blur, .tile] {
            let hint = e.usesCrossEntropy ? binaryHint : softHint
            let (_, grad) = lossAndGradient(e, image, hint, S)
            var worst = 0.0, checked = 0
            for k in stride(from: 3, to: S * S, by: 7) {
                let h: Float = 0.05
                var plus = image, minus = image
                plus[k] += h; minus[k] -= h
                let numeric = (lossAndGradient(e, plus, hint, S).0 - lossAndGradient(e, minus, hint, S).0) / Double(2 * h)
                let analytic = Double(grad[k])
                let err = abs(numeric - analytic) / max(1e-7, abs(numeric) + abs(analytic))
                // Gradients near float32's resolution of the loss are noise in the finite difference.
                if abs(numeric) + abs(analytic) > 1e-5 { worst = max(worst, err); checked += 1 }
            }
            XCTAssertGreaterThan(checked, 3, "\(e): too few pixels with a gradient to check")
            XCTAssertLessThan(worst, 2e-2, "\(e): gradient differs from central differences (relative \(worst))")
        }
    }

    /// The edge extractor is Canny up to its soft threshold: on uint8 digits, every pixel Canny(100, 200) marks is
    /// one non-maximum suppression keeps with magnitude > 100 (hysteresis only adds connected weak ones), and every
    /// kept pixel above 200 is marked.
    func testTheEdgeExtractorKeepsWhatCannyKeeps() throws {
        let S = 28
        var rng = RandomStream(seed: 23)
        var checkedStrong = 0, checkedEdges = 0
        for _ in 0..<20 {
            // A stroke-like image: a few soft discs of random size and brightness.
            var image = [Float](repeating: 0, count: S * S)
            for _ in 0..<3 {
                let cy = Float(rng.uniform() * 20 + 4), cx = Float(rng.uniform() * 20 + 4), r = Float(rng.uniform() * 5 + 2)
                for k in 0..<(S * S) {
                    let d = ((Float(k / S) - cy) * (Float(k / S) - cy) + (Float(k % S) - cx) * (Float(k % S) - cx)).squareRoot()
                    image[k] = max(image[k], 255 / (1 + exp((d - r) * 1.5)))
                }
            }
            let bytes = image.map { UInt8(max(0, min(255, $0.rounded()))) }
            var canny = [UInt8](repeating: 0, count: S * S)
            Canny.edges(bytes, height: S, width: S, low: 100, high: 200, into: &canny)
            let (m, kept) = ConditionExtractor.suppressedMagnitude(bytes.map(Float.init), S, S)
            for k in 0..<(S * S) {
                if canny[k] != 0 {
                    checkedEdges += 1
                    XCTAssertTrue(kept[k] && m[k] > 100, "Canny marks pixel \(k) (magnitude \(m[k])) that suppression drops")
                }
                if kept[k] && m[k] > 201 {
                    checkedStrong += 1
                    XCTAssertNotEqual(canny[k], 0, "pixel \(k) kept with magnitude \(m[k]) but not marked by Canny")
                }
            }
        }
        XCTAssertGreaterThan(checkedEdges, 100); XCTAssertGreaterThan(checkedStrong, 100)
    }

    /// d(diffusion + consistency loss) / d(ControlNet weight) by backprop through the frozen UNet, against central
    /// differences of the objective's returned loss.
    func testTheAddedLossGradientReachesTheControlNetWeights() throws {
        for target in ConsistencyTarget.allCases { try checkAddedLossGradient(target) }
    }

    private func checkAddedLossGradient(_ target: ConsistencyTarget) throws {
        let config = ModelConfig.tiny, S = config.imageSize, n = 3
        // A ControlNet that already does something (the zero convs are zero at initialisation).
        var rng = RandomStream(seed: 5)
        let model = perturbedControlNet(config, baseSeed: 1, controlSeed: 2, rng: &rng)
        let objective = DiffusionObjective(consistency: ConsistencySettings(weight: 0.5, maxT: 999, extractor: .edges,
                                                                            target: target))
        let buffers = BatchBuffers(config: config, batchSize: n)
        rng.fillNormal(buffers.x0.pointer, count: buffers.x0.count)
        for i in 0..<buffers.x0.count { buffers.x0.pointer[i] = tanh(buffers.x0.pointer[i]) }
        rng.fillNormal(buffers.eps.pointer, count: buffers.eps.count)
        for i in 0..<buffers.hint.count { buffers.hint.pointer[i] = rng.uniform() > 0.8 ? 1 : 0 }
        let batch = buffers.batch(t: [40, 120, 7], labels: nil)
        func loss() -> Double { model.grads.zero(); return Double(objective.accumulate(model, batch, lossScale: 1)) }
        let withConsistency = loss()
        let analytic = model.grads.array
        let plain = Double(DiffusionObjective().accumulate(model, batch, lossScale: 1))
        XCTAssertNotEqual(withConsistency, plain, "the consistency loss added nothing")
        var checked = 0
        for name in ["zero_convs.0.weight", "middle_out.weight", "hint_block.2.weight", "input_blocks.1.0.conv1.weight"] {
            let e = try XCTUnwrap(model.control.table.entry(name))
            for k in [0, e.count / 2] {
                // h 1e-2: small against the curvature (1e-3 is below the float32 loss's resolution).
                let i = e.offset + k, saved = model.params.pointer[i], h: Float = 1e-2
                model.params.pointer[i] = saved + h; let up = loss()
                model.params.pointer[i] = saved - h; let down = loss()
                model.params.pointer[i] = saved
                let numeric = (up - down) / Double(2 * h), a = Double(analytic[i])
                XCTAssertEqual(a, numeric, accuracy: 3e-2 * max(abs(numeric), 1e-3), "\(target): \(name)[\(k)]")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 8)
    }

    /// With the image target the loss pulls only toward the data: an estimate equal to the clean image (the
    /// network predicting the true noise) gets no gradient from it, while the hint target still pushes.
    func testTheImageTargetIsSatisfiedByTheCleanImage() throws {
        let config = ModelConfig.tiny, S = config.imageSize, n = 2, per = config.inChannels * S * S
        let unet = UNet(config: config)
        let base = FloatBuffer(count: unet.parameterCount)
        Initializers.initialize(unet.table, base.pointer, seed: 1)
        let model = ControlNetTraining(config: config, base: base, seed: 2)
        let buffers = BatchBuffers(config: config, batchSize: n)
        var rng = RandomStream(seed: 9)
        // A bright square on black, so the edge map has real edges, with a little noise so that no two
        // magnitudes tie (a tie could let the estimate's last-bit rounding flip a non-maximum suppression).
        for i in 0..<buffers.x0.count {
            let k = i % (S * S), y = k / S, x = k % S
            buffers.x0.pointer[i] = ((3...8).contains(y) && (2...9).contains(x) ? 0.9 : -0.9) + Float(rng.uniform()) * 0.1
        }
        rng.fillNormal(buffers.eps.pointer, count: buffers.eps.count)
        for i in 0..<buffers.hint.count { buffers.hint.pointer[i] = rng.uniform() > 0.8 ? 1 : 0 }
        let batch = buffers.batch(t: [30, 150], labels: nil)
        let schedule = NoiseSchedule()
        schedule.qSample(x0: batch.x0, eps: batch.eps, t: batch.t, perSample: per, into: batch.xT)
        let exact = FloatBuffer(count: n * per)
        exact.pointer.update(from: batch.eps, count: n * per)
        func added(_ target: ConsistencyTarget) -> (loss: Double, largest: Float) {
            let objective = DiffusionObjective(consistency: ConsistencySettings(weight: 1, maxT: 999, extractor: .edges,
                                                                                target: target))
            model.arenas.reset()
            let d = FloatBuffer(count: n * per)
            let loss = objective.addConsistency(model, batch, output: exact.pointer, lossScale: 1, dPrediction: d.pointer)
            return (loss, d.array.map(abs).max()!)
        }
        let image = added(.image), hint = added(.hint)
        XCTAssertGreaterThan(hint.largest, 1e-3, "the hint target should push this estimate")
        XCTAssertLessThan(image.largest, 1e-4 * hint.largest, "the image target pushed an estimate equal to the image")
        XCTAssertGreaterThan(image.loss, 0)   // the soft targets' own entropy: a floor, with no gradient
    }

    func testWeightZeroIsThePlainRunAndKindsWithoutAnExtractorAreRefused() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var plain = ws.options(data: data, base: base, out: "plain", steps: 3)
        plain.checkpointEvery = nil
        var zero = plain; zero.out = ws.path("zero"); zero.consistencyWeight = 0
        XCTAssertEqual(try train(plain).model.params.array.map(\.bitPattern), try train(zero).model.params.array.map(\.bitPattern))
        var on = plain; on.out = ws.path("on"); on.consistencyWeight = 1; on.consistencyMaxT = 999
        var again = plain; again.out = ws.path("again")
        XCTAssertNotEqual(try train(on).model.params.array, try train(again).model.params.array, "a weight of 1 changed nothing")
        var scribble = plain; scribble.hint = "scribble"; scribble.consistencyWeight = 1
        assertRefused(try scribble.validate(config: .tiny), ["--consistency-weight", "'scribble' has no differentiable extractor"])
        var base2 = plain; base2.mode = .base; base2.base = nil; base2.consistencyWeight = 1
        assertRefused(try base2.validate(config: .tiny), ["--consistency-weight", "ControlNet training"])
    }

    /// With the loss on: a run resumed from a mid-run checkpoint ends bit for bit where the whole run ends (the
    /// low-timestep draw and the loss are part of the step's deterministic state), and simulated ranks, gradient
    /// accumulation and bf16 all train (finite weights that the loss moved). mpirun np 2 against
    /// --simulate-ranks 2 with the loss on is in scripts/mpi-tests/30-train-np.sh.
    func testTheLossWorksWithResumeRanksAccumulationAndBF16() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var on = ws.options(data: data, base: base, out: "full", steps: 4)
        on.consistencyWeight = 1; on.consistencyMaxT = 200; on.consistencyFraction = 0.5
        on.checkpointEvery = 2
        let full = try train(on)
        var resumed = on; resumed.out = ws.path("resumed")
        try ws.seedCheckpoint("step-00000002", from: "full", to: "resumed")
        resumed.resume = "latest"
        let b = try train(resumed)
        XCTAssertEqual(full.model.params.array.map(\.bitPattern), b.model.params.array.map(\.bitPattern), "resume")
        var plain = on; plain.out = ws.path("plain"); plain.consistencyWeight = 0; plain.checkpointEvery = nil
        let reference = try train(plain).model.params.array
        var variants: [(String, TrainOptions)] = []
        var ranks = on; ranks.simulateRanks = 2; variants.append(("simulated ranks", ranks))
        var accum = on; accum.gradAccum = 2; variants.append(("accumulation", accum))
        var bf16 = on; bf16.precision = .bf16; variants.append(("bf16", bf16))
        for (name, var o) in variants {
            o.out = ws.path(name.replacingOccurrences(of: " ", with: "-")); o.checkpointEvery = nil
            let t = try train(o)
            XCTAssertTrue(Elementwise.allFinite(count: t.model.params.count, t.model.params.pointer), name)
            XCTAssertNotEqual(t.model.params.array, reference, "\(name): the loss changed nothing")
        }
    }
}
