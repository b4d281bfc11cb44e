// Reading a safetensors file: the whole file is mapped once and validated on open; tensors are copied out on request.
import Foundation

public struct SafeTensorsFile: Sendable {
    public let url: URL
    public let metadata: [String: String]
    /// Every tensor, in data-offset order.
    public let tensors: [TensorInfo]

    private let bytes: Data
    private let dataStart: Int
    private let index: [String: Int]

    /// Reads and validates the file; throws `SafeTensorsError` naming the file and tensor at fault.
    public init(contentsOf url: URL) throws {
        self.url = url
        do {
            // Mapped: checkpoints can be large and most callers copy each tensor out exactly once.
            bytes = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.unreadable(file: url.path, reason: FileReadFailure.reason(url, error))
        }
        (metadata, tensors, dataStart, index) = try Self.parse(bytes, url: url)
    }

    /// Parses bytes already in memory (e.g. a checkpoint shard that was just checksummed); `url` names it in errors.
    public init(data: Data, url: URL) throws {
        self.url = url
        bytes = data
        (metadata, tensors, dataStart, index) = try Self.parse(data, url: url)
    }

    private static func parse(_ bytes: Data, url: URL) throws
        -> ([String: String], [TensorInfo], Int, [String: Int]) {
        let header = try bytes.withUnsafeBytes { try SafeTensorsHeader(file: $0, name: url.path) }
        return (header.metadata, header.tensors, header.dataStart,
                Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) }))
    }

    /// Tensor names in data-offset order.
    public var names: [String] { tensors.map(\.name) }

    public func info(_ name: String) -> TensorInfo? {
        index[name].map { tensors[$0] }
    }

    /// The tensor's raw little-endian bytes.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try lookup(name)
        return try bytes.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[(dataStart + t.byteRange.lowerBound)..<(dataStart + t.byteRange.upperBound)]))
        }
    }

    /// An F32 tensor's values (F64 is converted).
    public func floats(_ name: String) throws -> [Float] {
        let t = try lookup(name)
        return try [Float](unsafeUninitializedCapacity: t.count) { buffer, initialized in
            try copyFloats(t, into: buffer.baseAddress, count: t.count)
            initialized = t.count
        }
    }

    /// Copies an F32 (or F64, converted) tensor into `into`, which must hold exactly the tensor's element count.
    public func copyFloats(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        let t = try lookup(name)
        guard count == t.count else {
            throw SafeTensorsError.countMismatch(file: url.path, tensor: name, expected: t.count, given: count)
        }
        try copyFloats(t, into: destination, count: count)
    }

    /// An I64 tensor's values (I32 is widened).
    public func int64s(_ name: String) throws -> [Int64] {
        let t = try lookup(name)
        switch t.dtype {
        case .i64:
            return try withRawBytes(name) { raw in
                [Int64](unsafeUninitializedCapacity: t.count) { buffer, initialized in
                    if t.count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
                    initialized = t.count
                }
            }
        case .i32:
            return try withRawBytes(name) { raw in
                (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
            }
        default:
            throw wrongType(t, wanted: [.i64, .i32])
        }
    }

    private func copyFloats(_ t: TensorInfo, into destination: UnsafeMutablePointer<Float>?, count: Int) throws {
        switch t.dtype {
        case .f32:
            try withRawBytes(t.name) { raw in
                if count > 0 { UnsafeMutableRawPointer(destination!).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
            }
        case .f64:
            try withRawBytes(t.name) { raw in
                for i in 0..<count { destination![i] = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            }
        default:
            throw wrongType(t, wanted: [.f32, .f64])
        }
    }

    private func lookup(_ name: String) throws -> TensorInfo {
        guard let i = index[name] else { throw SafeTensorsError.missingTensor(file: url.path, tensor: name) }
        return tensors[i]
    }

    private func wrongType(_ t: TensorInfo, wanted: [DType]) -> SafeTensorsError {
        .wrongDType(file: url.path, tensor: t.name, dtype: t.dtype.rawValue, expected: wanted.map(\.rawValue))
    }
}
