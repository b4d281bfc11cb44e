// Flat Float buffers. Every role (frozen weights; trainable params, grads, AdamW m and v) is ONE contiguous
// allocation with named views into it, so an all-reduce or an optimizer step is a single loop over one buffer.
import Foundation
import Kernels

/// An owned, zero-initialised, 64-byte aligned Float buffer.
public final class FloatBuffer: @unchecked Sendable {
    // @unchecked: the memory is owned here and freed in deinit; callers coordinate access (one step at a time).
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Memory that cannot be had ends the program with a message naming the size and the limits (callers
    /// check the sizes that input decides - configs, batch sizes - before they get here).
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer count must be >= 0")
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: 4)
        guard !overflow, posix_memalign(&raw, 64, bytes) == 0, let raw else {
            MemoryLimits.exitOutOfMemory(requestedBytes: overflow ? Int.max : bytes, what: "a buffer of \(count) floats")
        }
        raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
        pointer = raw.assumingMemoryBound(to: Float.self)
    }
    deinit { free(pointer) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public func zero() { pointer.update(repeating: 0, count: count) }
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: \(other.count) != \(count)")
        pointer.update(from: other.pointer, count: count)
    }
    public var array: [Float] { Array(buffer) }
}

/// One named tensor inside a parameter arena.
public struct ParameterEntry: Sendable, Hashable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The ordered list of named views (PyTorch's `named_parameters()` order) of one arena.
public struct ParameterTable: Sendable {
    public private(set) var entries: [ParameterEntry] = []
    private var index: [String: Int] = [:]
    public private(set) var count = 0

    public init() {}

    /// Appends a tensor and returns its offset in the arena.
    @discardableResult
    public mutating func add(_ name: String, _ shape: [Int]) -> Int {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let offset = count
        index[name] = entries.count
        entries.append(ParameterEntry(name: name, shape: shape, offset: offset))
        count += shape.reduce(1, *)
        return offset
    }

    public func entry(_ name: String) -> ParameterEntry? { index[name].map { entries[$0] } }
    public var names: [String] { entries.map(\.name) }
}

/// Offsets of a conv's weight (Cout, Cin, K, K) and bias (Cout) in an arena.
public struct ConvParams: Sendable {
    public let weight: Int, bias: Int
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int
    public var weightCount: Int { outChannels * inChannels * kernel * kernel }
    init(_ table: inout ParameterTable, _ name: String, _ cin: Int, _ cout: Int, kernel: Int = 3, stride: Int = 1) {
        weight = table.add(name + ".weight", [cout, cin, kernel, kernel])
        bias = table.add(name + ".bias", [cout])
        inChannels = cin; outChannels = cout; self.kernel = kernel; self.stride = stride
    }
}

/// Offsets of a linear layer's weight (Out, In) and bias (Out).
public struct LinearParams: Sendable {
    public let weight: Int, bias: Int, inFeatures: Int, outFeatures: Int
    init(_ table: inout ParameterTable, _ name: String, _ fin: Int, _ fout: Int) {
        weight = table.add(name + ".weight", [fout, fin]); bias = table.add(name + ".bias", [fout])
        inFeatures = fin; outFeatures = fout
    }
}

/// Offsets of a GroupNorm's affine weight (gamma) and bias (beta), both (C).
public struct NormParams: Sendable {
    public let weight: Int, bias: Int, channels: Int, groups: Int
    init(_ table: inout ParameterTable, _ name: String, _ channels: Int, groups: Int) {
        weight = table.add(name + ".weight", [channels]); bias = table.add(name + ".bias", [channels])
        self.channels = channels; self.groups = groups
    }
}

/// Where a layer reads its parameters and, when they are trained, accumulates their gradients, and in which
/// precision its convolutions and attention multiply (the weights themselves are always fp32).
/// `grads == nil` means frozen: no weight-gradient work at all. `transformed` (frozen weights only, inference):
/// where convs find their Winograd-transformed weights computed once instead of on every call.
public struct WeightSource {
    public let params: UnsafeMutablePointer<Float>
    public let grads: UnsafeMutablePointer<Float>?
    public let precision: Precision
    public let transformed: TransformedWeights?
    public init(params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>?,
                precision: Precision = .fp32, transformed: TransformedWeights? = nil) {
        precondition(grads == nil || transformed == nil, "transformed weights are for frozen weights only")
        self.params = params; self.grads = grads; self.precision = precision; self.transformed = transformed
    }
    @inline(__always) func p(_ offset: Int) -> UnsafeMutablePointer<Float> { params + offset }
    @inline(__always) func g(_ offset: Int) -> UnsafeMutablePointer<Float>? { grads.map { $0 + offset } }
    public var trainable: Bool { grads != nil }
}
