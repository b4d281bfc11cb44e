// Sampling and evaluation: scale 0 reproduces the base model exactly, a trained control changes the samples, the
// edge metrics score known cases right, and resampling keeps image content.
import XCTest
import Randomness
import Foundation
import Datasets
import Model
import Training

final class GenerationTests: XCTestCase {
    func testAControlNetOfAnotherPredictionTypeIsRefused() throws {
        let ws = try Workspace()
        let base = try ws.writeBase()    // no prediction_type recorded: epsilon
        let net = ControlNet(config: .tiny)
        let params = FloatBuffer(count: net.parameterCount)
        Initializers.initialize(net.table, params.pointer, seed: 2)
        let path = ws.path("v-control.safetensors")
        try WeightFile.save(kind: .controlnet, table: net.table, params: params.pointer, config: .tiny,
                            to: URL(fileURLWithPath: path), extraMetadata: [PredictionType.metadataKey: "v"])
        assertRefused(try Generator.load(base: base, controls: [ControlSpec(path: path)]),
                      ["--control", path, "v prediction", "predicts epsilon"])
        let same = ws.path("eps-control.safetensors")
        try WeightFile.save(kind: .controlnet, table: net.table, params: params.pointer, config: .tiny,
                            to: URL(fileURLWithPath: same), extraMetadata: [PredictionType.metadataKey: "epsilon"])
        XCTAssertNoThrow(try Generator.load(base: base, controls: [ControlSpec(path: same)]))
    }

    func testScaleZeroSamplesAreTheBaseModelsAndControlChangesThem() throws {
        let config = ModelConfig.tiny
        let unet = UNet(config: config)
        let base = FloatBuffer(count: unet.parameterCount)
        Initializers.initialize(unet.table, base.pointer, seed: 1)
        let net = ControlNet(config: config)
        let control = FloatBuffer(count: net.parameterCount)
        Initializers.initialize(net.table, control.pointer, seed: 2)   // non-zero zero convs: a "trained" control
        let n = 6, S = config.imageSize
        var rng = RandomStream(seed: 5)
        let hints = (0..<(n * S * S)).map { _ in rng.uniform() > 0.7 ? Float(1) : 0 }
        var settings = GenerationSettings()
        settings.sampler = SamplerSettings(kind: .ddim, steps: 8, seed: 11)
        settings.batchSize = 4    // two batches: sample noise must not depend on the batching
        let plain = Generator(config: config, base: base, controls: []).generate(count: n, hints: nil, labels: nil, settings: settings)
        let zero = Generator(config: config, base: base, controls: [.init(params: control, scale: 0)])
            .generate(count: n, hints: hints, labels: nil, settings: settings)
        XCTAssertEqual(plain.map(\.bitPattern), zero.map(\.bitPattern), "scale 0 must be the base model exactly")
        settings.batchSize = 6
        let oneBatch = Generator(config: config, base: base, controls: []).generate(count: n, hints: nil, labels: nil, settings: settings)
        XCTAssertEqual(plain.map(\.bitPattern), oneBatch.map(\.bitPattern), "batching changed the samples")
        let controlled = Generator(config: config, base: base, controls: [.init(params: control, scale: 1)])
            .generate(count: n, hints: hints, labels: nil, settings: settings)
        XCTAssertNotEqual(plain, controlled)
        XCTAssertTrue(controlled.allSatisfy { $0.isFinite && abs($0) <= 1.0001 })
    }

    func testDDPMVisitsEveryStepAndDDIMTheRequestedOnes() {
        let s = DiffusionSampler()
        XCTAssertEqual(s.timesteps(SamplerSettings(kind: .ddpm)).count, 1000)
        let ddim = s.timesteps(SamplerSettings(kind: .ddim, steps: 50))
        XCTAssertEqual(ddim.count, 50)
        XCTAssertEqual(ddim.first, 980); XCTAssertEqual(ddim.last, 0)
    }

    func testEdgeScoresOnKnownMaps() {
        var a = [UInt8](repeating: 0, count: 100), b = a
        for i in 2..<8 { a[5 * 10 + i] = 255; b[6 * 10 + i] = 255 }   // the same line, one pixel lower
        let exactSelf = EdgeMetrics.score(predicted: a, hint: a, height: 10, width: 10, tolerance: 0)
        XCTAssertEqual(exactSelf.f1, 1)
        XCTAssertEqual(EdgeMetrics.score(predicted: b, hint: a, height: 10, width: 10, tolerance: 0).f1, 0)
        XCTAssertEqual(EdgeMetrics.score(predicted: b, hint: a, height: 10, width: 10, tolerance: 1).f1, 1)
        var half = [UInt8](repeating: 0, count: 100)
        for i in 2..<5 { half[5 * 10 + i] = 255 }
        let s = EdgeMetrics.score(predicted: half, hint: a, height: 10, width: 10, tolerance: 0)
        XCTAssertEqual(s.precision, 1); XCTAssertEqual(s.recall, 0.5); XCTAssertEqual(s.f1, 2.0 / 3.0, accuracy: 1e-12)
    }

    func testResizeKeepsMeansAndHeldOutSelectionSpreadsOverLabels() {
        let ds = ImageDataset(name: "flat", count: 2, channels: 1, height: 28, width: 28,
                              pixels: [UInt8](repeating: 77, count: 784) + [UInt8](repeating: 200, count: 784), labels: [0, 1])
        let small = ds.resized(height: 8, width: 8)
        XCTAssertEqual(small.height, 8)
        XCTAssertTrue(small.pixels[0..<64].allSatisfy { $0 == 77 })
        XCTAssertTrue(small.pixels[64...].allSatisfy { $0 == 200 })
        XCTAssertEqual(HeldOutHints.selection(count: 10, of: 1000), (0..<10).map { $0 * 100 })
    }
}
