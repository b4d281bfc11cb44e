// Parsing and validating the header of a safetensors file: the 8-byte length, the JSON, and the data layout.
import Foundation

/// A validated header: tensors sorted by data offset, the metadata, and where the data section starts in the file.
struct SafeTensorsHeader {
    var tensors: [TensorInfo]
    var metadata: [String: String]
    var dataStart: Int

    /// Validates `file` (all of its bytes) the way the Rust reference implementation does: the tensors must tile
    /// the data section exactly — no overlaps, no gaps, no trailing bytes — so any corruption is caught on open.
    init(file bytes: UnsafeRawBufferPointer, name file: String) throws {
        guard bytes.count >= 8 else {
            throw SafeTensorsError.truncated(file: file, tensor: nil, size: bytes.count, needed: 8)
        }
        let length = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard length <= UInt64(bytes.count - 8) else {
            let needed = length > UInt64(Int.max - 8) ? Int.max : 8 + Int(length)
            throw SafeTensorsError.truncated(file: file, tensor: nil, size: bytes.count, needed: needed)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + Int(length))])
        dataStart = 8 + Int(length)
        let dataSize = bytes.count - dataStart

        let json = try Self.parseJSON(headerBytes, file: file)
        metadata = [:]
        tensors = []
        for name in json.keys.sorted() {  // sorted: with several bad entries, the same one is reported every time
            let value = json[name]!
            if name == "__metadata__" {
                metadata = try Self.parseMetadata(value, file: file)
            } else {
                tensors.append(try Self.parseEntry(name: name, value, file: file))
            }
        }
        tensors.sort { ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name)
            < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name) }
        try Self.checkLayout(tensors, dataSize: dataSize, fileSize: bytes.count, dataStart: dataStart, file: file)
    }

    private static func parseJSON(_ header: UnsafeRawBufferPointer, file: String) throws -> [String: Any] {
        guard header.first == UInt8(ascii: "{") else {
            throw SafeTensorsError.badHeader(file: file, tensor: nil, reason: "the header does not start with '{'")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(header), options: [])
        } catch {
            throw SafeTensorsError.badHeader(file: file, tensor: nil, reason: "the header is not valid JSON (\(error))")
        }
        guard let dict = object as? [String: Any] else {
            throw SafeTensorsError.badHeader(file: file, tensor: nil, reason: "the header is not a JSON object")
        }
        return dict
    }

    private static func parseMetadata(_ value: Any, file: String) throws -> [String: String] {
        guard let dict = value as? [String: Any] else {
            throw SafeTensorsError.badHeader(file: file, tensor: "__metadata__", reason: "it is not a JSON object")
        }
        var metadata: [String: String] = [:]
        for (key, v) in dict {
            guard let s = v as? String else {
                throw SafeTensorsError.badHeader(file: file, tensor: "__metadata__",
                                                 reason: "the value of '\(key)' is not a string")
            }
            metadata[key] = s
        }
        return metadata
    }

    /// A JSON number that is a non-negative integer fitting in Int (NSNumber bridging rejects fractions).
    private static func nonNegativeInt(_ value: Any) -> Int? {
        guard let i = value as? Int, i >= 0 else { return nil }
        return i
    }

    private static func parseEntry(name: String, _ value: Any, file: String) throws -> TensorInfo {
        func bad(_ reason: String) -> SafeTensorsError {
            .badHeader(file: file, tensor: name, reason: reason)
        }
        guard let entry = value as? [String: Any] else { throw bad("the entry is not a JSON object") }
        let extra = Set(entry.keys).subtracting(["dtype", "shape", "data_offsets"])
        if let key = extra.sorted().first { throw bad("unexpected field '\(key)'") }
        guard let dtypeName = entry["dtype"] as? String else { throw bad("field 'dtype' is missing or not a string") }
        guard let shapeArray = entry["shape"] as? [Any] else { throw bad("field 'shape' is missing or not an array") }
        let shape = shapeArray.compactMap(nonNegativeInt)
        guard shape.count == shapeArray.count else { throw bad("field 'shape' holds a value that is not a non-negative integer") }
        guard let offsetArray = entry["data_offsets"] as? [Any] else {
            throw bad("field 'data_offsets' is missing or not an array")
        }
        let offsets = offsetArray.compactMap(nonNegativeInt)
        guard offsets.count == 2, offsetArray.count == 2 else {
            throw bad("field 'data_offsets' is not two non-negative integers [begin, end]")
        }
        guard offsets[0] <= offsets[1] else { throw bad("data_offsets [\(offsets[0]), \(offsets[1])) end before they begin") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unsupportedDType(file: file, tensor: name, dtype: dtypeName,
                                                    supported: DType.allCases.map(\.rawValue))
        }
        let byteCount = offsets[1] - offsets[0]
        guard let n = elementCount(shape), n.multipliedReportingOverflow(by: dtype.size) == (byteCount, false) else {
            throw SafeTensorsError.sizeMismatch(file: file, tensor: name, shape: shape, dtype: dtypeName,
                                                byteCount: byteCount)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
    }

    /// `tensors` sorted by offset must tile [0, dataSize) exactly.
    private static func checkLayout(_ tensors: [TensorInfo], dataSize: Int, fileSize: Int, dataStart: Int,
                                    file: String) throws {
        let lastEnd = tensors.map(\.byteRange.upperBound).max() ?? 0
        var end = 0
        var previous: String?
        for t in tensors {
            let r = t.byteRange
            if r.lowerBound < end, let previous {
                throw SafeTensorsError.overlap(file: file, tensor: t.name, other: previous)
            }
            if r.upperBound > dataSize {
                // Everything before this tensor was packed, so the header is consistent and the file is short.
                if r.lowerBound == end {
                    throw SafeTensorsError.truncated(file: file, tensor: t.name, size: fileSize, needed: dataStart + lastEnd)
                }
                throw SafeTensorsError.offsetOutOfRange(file: file, tensor: t.name, begin: r.lowerBound,
                                                        end: r.upperBound, dataSize: dataSize)
            }
            if r.lowerBound > end {
                throw SafeTensorsError.badHeader(file: file, tensor: t.name,
                    reason: "bytes [\(end), \(r.lowerBound)) before it belong to no tensor (safetensors data is packed)")
            }
            end = r.upperBound
            previous = t.name
        }
        if end < dataSize {
            throw SafeTensorsError.badHeader(file: file, tensor: previous,
                reason: "\(dataSize - end) bytes follow the last tensor's data (safetensors data is packed)")
        }
    }
}
