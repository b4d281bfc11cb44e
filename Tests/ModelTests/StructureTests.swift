// Structure of the networks: parameter counts of every preset, names, zero initialisation, the frozen base,
// config validation and weight-file checks.
import XCTest
import TestSupport
import Randomness
import Foundation
import Kernels
import Model
import SafeTensors

final class StructureTests: XCTestCase {
    func testParameterCountsOfAllPresets() {
        let expected: [String: (unet: Int, control: Int)] = [
            "mnist": (1_623_169, 695_664), "mnist-class": (1_624_577, 697_072),
            "tiny": (44_969, 22_064), "tiny-class": (45_097, 22_192),
            // ARCHITECTURE.md's counts for the two later presets.
            "fill32": (1_632_643, 704_848), "scale64": (8_952_067, 3_559_824),
        ]
        for (name, config) in ModelConfig.presets {
            XCTAssertEqual(UNet(config: config).parameterCount, expected[name]!.unet, "\(name) UNet")
            XCTAssertEqual(ControlNet(config: config).parameterCount, expected[name]!.control, "\(name) ControlNet")
        }
        // 10 zero convs including middle_out for mnist (9 input blocks + middle).
        XCTAssertEqual(UNet(config: .mnist).residualChannels.count, 10)
        XCTAssertEqual(UNet(config: .fill32).residualChannels.count, 10)
        XCTAssertEqual(UNet(config: .scale64).residualChannels.count, 13)
    }

    func testNamesMatchTheReferenceFixtureExactly() throws {
        let f = try Fixture("tiny-class")
        XCTAssertEqual(Set(f.unet.table.names), Set(f.file.names.filter { $0.hasPrefix("unet.") }.map { String($0.dropFirst(5)) }))
        XCTAssertEqual(Set(f.control.table.names), Set(f.file.names.filter { $0.hasPrefix("control.") }.map { String($0.dropFirst(8)) }))
    }

    /// A fresh ControlNet copied from a UNet gives a controlled output bit-identical to the base output.
    func testZeroInitControlledOutputIsBitIdenticalToBase() throws {
        for name in ["tiny", "tiny-class"] {
            let f = try Fixture(name)
            let control = FloatBuffer(count: f.control.parameterCount)
            var rng = RandomStream(seed: 7)
            for i in 0..<control.count { control.pointer[i] = 0.1 * rng.normal() }
            f.control.initialize(params: control.pointer, from: f.unet, unetParams: f.unetParams.pointer)
            let xb = FloatBuffer(f.x0), hb = FloatBuffer(f.hint); let x = xb.pointer, hint = hb.pointer
            defer { withExtendedLifetime((xb, hb)) {} }
            let n = f.batch * f.perSample
            let frozen = WeightSource(params: f.unetParams.pointer, grads: nil)
            let baseArenas = StepArenas()
            let base = Array(UnsafeBufferPointer(start: f.unet.forward(frozen, x: x, t: f.t, labels: f.labels,
                                                                       arenas: baseArenas), count: n))
            let arenas = StepArenas()
            let res = f.control.forward(WeightSource(params: control.pointer, grads: nil), x: x, hint: hint, t: f.t,
                                        labels: f.labels, arenas: arenas)
            for (k, r) in res.enumerated() {
                XCTAssertTrue((0..<16).allSatisfy { r[$0] == 0 }, "residual \(k) is not zero at init")
            }
            let controlled = Array(UnsafeBufferPointer(start: f.unet.forward(frozen, x: x, t: f.t, labels: f.labels,
                controls: [ControlResiduals(residuals: res, scale: 1)], arenas: arenas), count: n))
            XCTAssertEqual(base.map(\.bitPattern), controlled.map(\.bitPattern), "\(name): controlled != base at init")
        }
    }

    /// After 3 ControlNet training steps the base arena's bytes are unchanged and the ControlNet moved.
    func testFrozenBaseIsUntouchedByControlNetTraining() throws {
        let f = try Fixture("tiny")
        let before = f.unetParams.array, controlBefore = f.controlParams.array
        let grads = FloatBuffer(count: f.control.parameterCount)
        let m = FloatBuffer(count: grads.count), v = FloatBuffer(count: grads.count)
        let arenas = StepArenas()
        let n = f.batch * f.perSample
        for step in 1...3 {
            arenas.reset(); grads.zero()
            let xb = FloatBuffer(f.x0), hb = FloatBuffer(f.hint); let x = xb.pointer, hint = hb.pointer
            defer { withExtendedLifetime((xb, hb)) {} }
            let frozen = WeightSource(params: f.unetParams.pointer, grads: nil)
            let cws = WeightSource(params: f.controlParams.pointer, grads: grads.pointer)
            let res = f.control.forward(cws, x: x, hint: hint, t: f.t, arenas: arenas)
            let out = f.unet.forward(frozen, x: x, t: f.t, controls: [ControlResiduals(residuals: res, scale: 1)], arenas: arenas)
            let dOut = arenas.grads.takeZeroed(n)
            MSELoss.backward(count: n, prediction: out, target: f.eps, scale: 1, dPrediction: dOut)
            let dRes = f.unet.backward(frozen, dOut: dOut, arenas: arenas)
            f.control.backward(cws, dResiduals: dRes.all, scale: 1, arenas: arenas)
            AdamW.step(count: grads.count, params: f.controlParams.pointer, grads: grads.pointer, m: m.pointer,
                       v: v.pointer, lr: 1e-3, step: step, config: AdamWConfig())
        }
        XCTAssertEqual(before.map(\.bitPattern), f.unetParams.array.map(\.bitPattern), "the frozen base changed")
        XCTAssertNotEqual(controlBefore, f.controlParams.array, "the ControlNet did not train")
        // Steady state: the arenas stopped growing after the first steps.
        let grows = arenas.acts.growCount + arenas.grads.growCount
        arenas.reset()
        XCTAssertEqual(arenas.acts.growCount + arenas.grads.growCount, grows, "arena grew in steady state")
    }

    func testConfigValidationNamesTheField() throws {
        var c = ModelConfig.mnist
        c.normGroups = 5
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "norm_groups") }
        c = .mnist; c.numHeads = 3
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "num_heads") }
        c = .mnist; c.imageSize = 30
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "image_size") }
        c = .mnist; c.attentionLevels = [3]
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "attention_levels") }
        for (_, preset) in ModelConfig.presets { XCTAssertNoThrow(try preset.validate()) }
        // snake_case JSON round trip
        let decoded = try ModelConfig.decode(json: Data(ModelConfig.mnistClass.json.utf8), source: "test")
        XCTAssertEqual(decoded, .mnistClass)
        XCTAssertTrue(ModelConfig.mnist.json.contains("\"hint_block_channels\""))
        XCTAssertThrowsError(try ModelConfig.decode(json: Data("{\"image_size\": 28}".utf8), source: "x.json")) {
            XCTAssertTrue("\($0)".contains("in_channels") || "\($0)".contains("missing"), "\($0)")
        }
    }

    func testWeightFileRoundTripAndMismatchReport() throws {
        let f = try Fixture("tiny")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("control.safetensors")
        try WeightFile.save(kind: .controlnet, table: f.control.table, params: f.controlParams.pointer, config: f.config, to: url)
        let loaded = FloatBuffer(count: f.control.parameterCount)
        try WeightFile.load(try SafeTensorsFile(contentsOf: url), table: f.control.table, into: loaded.pointer, expecting: f.config)
        XCTAssertEqual(loaded.array.map(\.bitPattern), f.controlParams.array.map(\.bitPattern))
        // A ControlNet file is not a UNet: the error lists missing and unexpected tensors; another config is named.
        let unetParams = FloatBuffer(count: f.unet.parameterCount)
        XCTAssertThrowsError(try WeightFile.load(try SafeTensorsFile(contentsOf: url), table: f.unet.table,
                                                 into: unetParams.pointer, expecting: f.config)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("missing tensor output_blocks.0.0.conv1.weight"), text)
            XCTAssertTrue(text.contains("unexpected tensor zero_convs.0.weight"), text)
        }
        XCTAssertThrowsError(try WeightFile.load(try SafeTensorsFile(contentsOf: url), table: f.control.table,
                                                 into: loaded.pointer, expecting: .tinyClass)) { error in
            XCTAssertTrue("\(error)".contains("config differs"), "\(error)")
        }
    }
}

final class CostTests: XCTestCase {
    /// FLOPs of the tiny config by hand: every conv/linear as 2 * MACs, attention as 2 * 2 * C * T^2.
    func testTinyForwardFLOPsMatchAHandCount() {
        let cost = ModelCost(config: .tiny)
        func conv(_ i: Int, _ o: Int, _ k: Int, _ s: Int) -> Double { 2.0 * Double(i * o * k * k * s * s) }
        let temb = 2.0 * Double(8 * 32 + 32 * 32)
        // encoder: conv_in 1->8 @8; Res 8->8 @8; Down 8 @4; Res 8->16 @4 + Attn 16 @4
        let res88 = conv(8, 8, 3, 8) * 2 + 2.0 * 32 * 8
        let res816 = conv(8, 16, 3, 4) + conv(16, 16, 3, 4) + conv(8, 16, 1, 4) + 2.0 * 32 * 16
        let attn16 = conv(16, 48, 1, 4) + conv(16, 16, 1, 4) + 4.0 * 16 * 16 * 16
        let enc = conv(1, 8, 3, 8) + res88 + conv(8, 8, 3, 4) + res816 + attn16
        let res1616 = conv(16, 16, 3, 4) * 2 + 2.0 * 32 * 16
        let middle = 2 * res1616 + attn16
        XCTAssertEqual(cost.controlNetForward - cost.unetForward + cost.unetDecoderForward,
                       conv(1, 4, 3, 8) + conv(4, 8, 3, 8) + conv(8, 8, 3, 8)          // hint block
                       + 2 * conv(8, 8, 1, 8) + conv(8, 8, 1, 4)                    // zero convs at 8, 8, 4
                       + 2 * conv(16, 16, 1, 4), accuracy: 1)                            // zero conv 3 and middle_out
        XCTAssertEqual(cost.unetForward - cost.unetDecoderForward, temb + enc + middle, accuracy: 1)
        XCTAssertEqual(cost.zeroConvCount, 5)
        XCTAssertEqual(ModelCost(config: .mnist).zeroConvCount, 10)
    }
}
