// Writing a safetensors file: tensors are packed in the order added; the file is replaced atomically.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct SafeTensorsWriter {
    private struct Entry {
        let name: String
        let dtype: DType
        let shape: [Int]
        let data: [UInt8]
    }
    private var entries: [Entry] = []
    private var taken: Set<String> = []

    public init() {}

    /// Adds a copy of `bytes`, which must hold shape.product elements of `dtype`, little-endian.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        guard name != "__metadata__" else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "the name is reserved for the file's metadata")
        }
        guard !taken.contains(name) else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "a tensor of that name was already added")
        }
        guard let n = elementCount(shape) else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "shape \(shape) has a negative dimension or is too large")
        }
        guard n * dtype.size == bytes.count else {
            throw SafeTensorsError.invalidTensor(tensor: name,
                reason: "shape \(shape) needs \(n) elements but \(bytes.count / dtype.size) were given")
        }
        entries.append(Entry(name: name, dtype: dtype, shape: shape, data: [UInt8](bytes)))
        taken.insert(name)
    }

    public mutating func add(_ name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) throws {
        try add(name, dtype: .f32, shape: shape, bytes: UnsafeRawBufferPointer(floats))
    }

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) throws {
        try floats.withUnsafeBufferPointer { try add(name, shape: shape, floats: $0) }
    }

    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) throws {
        try int64s.withUnsafeBytes { try add(name, dtype: .i64, shape: shape, bytes: $0) }
    }

    /// The whole file in memory (for small files and tests; `write` streams instead).
    public func serialized(metadata: [String: String]) -> [UInt8] {
        var out = header(metadata: metadata)
        for e in entries { out += e.data }
        return out
    }

    /// Writes the file atomically: a temporary file in the same directory is written, synced and renamed over
    /// `url`, so a crash leaves either the old file or the complete new one, never a torn checkpoint.
    public func write(to url: URL, metadata: [String: String]) throws {
        let path = url.path
        func failure(_ what: String) -> SafeTensorsError {
            .writeFailed(file: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var renamed = false
        var isOpen = true
        defer {
            if isOpen { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try writeAll(fd, header(metadata: metadata), failure)
        for e in entries { try writeAll(fd, e.data, failure) }
        guard fsync(fd) == 0 else { throw failure("fsync of \(temporary) failed") }
        isOpen = false
        guard close(fd) == 0 else { throw failure("close of \(temporary) failed") }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to \(path)") }
        renamed = true
        // Make the rename itself durable; some file systems refuse fsync on directories, which is harmless.
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// The length prefix and the JSON header, padded with spaces so the data starts 8-byte aligned (as the
    /// Rust/Python library writes it).
    private func header(metadata: [String: String]) -> [UInt8] {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for e in entries {
            let shape = e.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(offset),\(offset + e.data.count)]}")
            offset += e.data.count
        }
        var json = Array("{\(fields.joined(separator: ","))}".utf8)
        json += [UInt8](repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        return withUnsafeBytes(of: UInt64(json.count).littleEndian) { [UInt8]($0) } + json
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes and interrupted calls.
/// (At file scope so `write` means the system call, not `SafeTensorsWriter.write`.)
private func writeAll(_ fd: Int32, _ bytes: [UInt8], _ failure: (String) -> SafeTensorsError) throws {
    try bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("write failed")
            }
            done += n
        }
    }
}

/// A JSON string literal (RFC 8259 escaping; non-ASCII stays UTF-8).
private func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                + String(scalar.value, radix: 16)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
