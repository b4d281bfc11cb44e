// Loads a PyTorch reference fixture (Fixtures/<config>.safetensors, copied from shared/reference) into the
// Swift networks, so every test compares against the same weights and inputs PyTorch used.
import Foundation
import Model
import SafeTensors

final class Fixture {
    let file: SafeTensorsFile
    let config: ModelConfig
    let unet: UNet
    let control: ControlNet
    let unetParams: FloatBuffer
    let controlParams: FloatBuffer
    let x0: [Float], eps: [Float], hint: [Float]
    let t: [Int]
    let labels: [Int]?
    var batch: Int { t.count }
    var perSample: Int { config.inChannels * config.imageSize * config.imageSize }

    init(_ name: String) throws {
        guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
            throw NSError(domain: "Fixture", code: 1, userInfo: [NSLocalizedDescriptionKey: "missing fixture \(name)"])
        }
        file = try SafeTensorsFile(contentsOf: url)
        config = try WeightFile.config(of: file)
        unet = UNet(config: config)
        control = ControlNet(config: config)
        unetParams = FloatBuffer(count: unet.parameterCount)
        controlParams = FloatBuffer(count: control.parameterCount)
        // The fixture stores config only once at top level; weights are checked by name and shape.
        try WeightFile.load(file, table: unet.table, into: unetParams.pointer, expecting: config, prefix: "unet.")
        try WeightFile.load(file, table: control.table, into: controlParams.pointer, expecting: config, prefix: "control.")
        x0 = try file.floats("input.x0"); eps = try file.floats("input.eps"); hint = try file.floats("input.hint")
        t = try file.int64s("input.t").map { Int($0) }
        labels = file.info("input.label") == nil ? nil : try file.int64s("input.label").map { Int($0) }
    }

    func expect(_ name: String) throws -> [Float] { try file.floats("expect." + name) }
}

extension FloatBuffer {
    /// A buffer holding `values`: network inputs must outlive the pass (backward reads them), which an
    /// array's `&x` temporary pointer does not guarantee.
    convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }
}
