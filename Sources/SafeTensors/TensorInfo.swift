// The element types this module reads and writes, and the description of one tensor in a safetensors file.
import Foundation

#if _endian(big)
// safetensors data is little-endian and this module copies it without byte swapping.
#error("SafeTensors assumes a little-endian host")
#endif

/// A tensor element type, spelled as in the safetensors header.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f64 = "F64", i64 = "I64", i32 = "I32", u8 = "U8"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .u8: return 1
        }
    }
}

/// One tensor's entry in the header. `byteRange` is relative to the start of the data section
/// (the header's `data_offsets`), not to the start of the file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let byteRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Number of elements (1 for a scalar, whose shape is []).
    public var count: Int { shape.reduce(1, *) }
}

/// The element count of `shape`, or nil when a dimension is negative or the product overflows Int.
func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = p
    }
    return n
}
