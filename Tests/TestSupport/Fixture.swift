// The PyTorch reference fixtures (Fixtures/*.safetensors, copied from shared/reference: tiny and tiny-class, one
// forward/backward/AdamW step each; tiny-trajectory, ten training steps), and a loader that puts a step fixture's
// weights into the Swift networks, so every test compares against the same weights and inputs PyTorch used.
import Foundation
import Model
import SafeTensors

public enum ReferenceFixtures {
    /// The URL of Fixtures/<name>.safetensors.
    public static func url(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
            throw NSError(domain: "Fixture", code: 1, userInfo: [NSLocalizedDescriptionKey: "missing fixture \(name)"])
        }
        return url
    }
}

public final class Fixture {
    public let file: SafeTensorsFile
    public let config: ModelConfig
    public let unet: UNet
    public let control: ControlNet
    public let unetParams: FloatBuffer
    public let controlParams: FloatBuffer
    public let x0: [Float], eps: [Float], hint: [Float]
    public let t: [Int]
    public let labels: [Int]?
    public var batch: Int { t.count }
    public var perSample: Int { config.inChannels * config.imageSize * config.imageSize }

    public init(_ name: String) throws {
        file = try SafeTensorsFile(contentsOf: try ReferenceFixtures.url(name))
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

    public func expect(_ name: String) throws -> [Float] { try file.floats("expect." + name) }
}

extension FloatBuffer {
    /// A buffer holding `values`: network inputs must outlive the pass (backward reads them), which an
    /// array's `&x` temporary pointer does not guarantee.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }
}
