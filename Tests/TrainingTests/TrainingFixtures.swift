// Small, self-contained training setups: a synthetic 8x8 labelled dataset written as CSV (no downloads needed), a
// tiny base UNet, and option presets, each in its own temporary directory.
import Foundation
import XCTest
import Randomness
import Distributed
import Model
import Training

final class Workspace {
    let root: URL
    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cn-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: root) }
    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    /// Copies checkpoint `checkpoint` of the run in `from` into a fresh run directory `to`, so that a run there
    /// with --resume latest starts from it.
    func seedCheckpoint(_ checkpoint: String, from: String, to: String) throws {
        let target = root.appendingPathComponent("\(to)/checkpoints")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: root.appendingPathComponent("\(from)/checkpoints/\(checkpoint)"),
                                         to: target.appendingPathComponent(checkpoint))
    }

    /// 200 synthetic 8x8 "digits" (a bright square whose place depends on the label), 10 labels x 20 rows.
    func writeDataset(seed: UInt64 = 42, name: String = "synthetic8.csv") throws -> String {
        var lines: [String] = []
        var rng = RandomStream(seed: seed)
        for label in 0..<10 {
            for _ in 0..<20 {
                var px = [Int](repeating: 0, count: 64)
                let oy = label / 4 + 1, ox = label % 4 + 1
                for y in oy..<(oy + 3) { for x in ox..<(ox + 3) { px[y * 8 + x] = 200 + rng.int(below: 56) } }
                for i in 0..<64 where px[i] == 0 { px[i] = rng.int(below: 30) }
                lines.append((px.map(String.init) + [String(label)]).joined(separator: ","))
            }
        }
        let path = self.path(name)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A tiny base UNet with seeded PyTorch-default weights, saved as a weight file.
    func writeBase(seed: UInt64 = 3, config: ModelConfig = .tiny) throws -> String {
        let unet = UNet(config: config)
        let params = FloatBuffer(count: unet.parameterCount)
        Initializers.initialize(unet.table, params.pointer, seed: seed)
        let path = self.path("base-\(seed).safetensors")
        try WeightFile.save(kind: .unet, table: unet.table, params: params.pointer, config: config,
                            to: URL(fileURLWithPath: path))
        return path
    }

    func options(data: String, base: String?, out: String, steps: Int, mode: TrainingMode = .controlnet) -> TrainOptions {
        var o = TrainOptions()
        o.mode = mode; o.config = "tiny"; o.data = data; o.base = base; o.out = path(out)
        o.batchSize = 4; o.maxSteps = steps; o.lr = 1e-3; o.logEvery = 1
        return o
    }
}

func train(_ options: TrainOptions) throws -> Trainer {
    let trainer = try Trainer(options: options, comm: LocalCommunicator())
    _ = try trainer.run()
    return trainer
}

/// Asserts that `body` throws an error whose description contains every fragment; returns the description.
@discardableResult
func assertRefused<T>(_ body: @autoclosure () throws -> T, _ fragments: [String], file: StaticString = #filePath,
                      line: UInt = #line) -> String {
    do {
        _ = try body()
        XCTFail("expected a refusal mentioning \(fragments)", file: file, line: line)
        return ""
    } catch {
        let text = "\(error)"
        for f in fragments where !text.contains(f) {
            XCTFail("'\(text)' should mention '\(f)'", file: file, line: line)
        }
        return text
    }
}

/// The SHA-256 of every regular file under `dir`, by relative path (to prove a refusal changed nothing).
func fileHashes(_ dir: URL) -> [String: Int] {
    var out: [String: Int] = [:]
    guard let e = FileManager.default.enumerator(atPath: dir.path) else { return out }
    while let rel = e.nextObject() as? String {
        if let d = FileManager.default.contents(atPath: dir.appendingPathComponent(rel).path) { out[rel] = d.hashValue }
    }
    return out
}

/// A ControlNet beside a freshly initialised base (seed `baseSeed`) whose weights, zero convs included, are moved
/// off their initialisation by N(0, 0.05^2) noise from `rng`, so that every trainable weight gets a gradient.
func perturbedControlNet(_ config: ModelConfig, baseSeed: UInt64, controlSeed: UInt64,
                         rng: inout RandomStream) -> ControlNetTraining {
    let unet = UNet(config: config)
    let base = FloatBuffer(count: unet.parameterCount)
    Initializers.initialize(unet.table, base.pointer, seed: baseSeed)
    let model = ControlNetTraining(config: config, base: base, seed: controlSeed)
    for i in 0..<model.params.count { model.params.pointer[i] += Float(rng.normal()) * 0.05 }
    return model
}
