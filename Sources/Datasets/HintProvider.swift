// Serves control hints per sample. Deterministic kinds are computed once for the whole dataset (in parallel) and
// kept in memory as uint8 (optionally also on disk, keyed by a checksum of the pixels); random kinds are computed
// on the fly from (seed, index), so every rank and every resumed run sees the same hint for the same sample.
import CZlib
import Dispatch
import Foundation

public final class HintProvider: Sendable {
    public let dataset: ImageDataset
    public let kind: HintKind
    /// Hint channels (always 1: hints are computed from the grayscale image).
    public let channels = 1
    /// (N, H, W) uint8 hints for deterministic kinds; nil for random kinds.
    private let cache: [UInt8]?

    /// Precomputes and caches deterministic kinds in memory.
    public init(dataset: ImageDataset, kind: HintKind) {
        self.dataset = dataset
        self.kind = kind
        cache = kind.isDeterministic ? HintProvider.computeAll(dataset, kind) : nil
    }

    /// As `init(dataset:kind:)`, and also keeps deterministic hints in `cacheDirectory` (created if needed), reusing
    /// a cache file whose dimensions, kind and pixel checksum match.
    public init(dataset: ImageDataset, kind: HintKind, cacheDirectory: URL) throws {
        self.dataset = dataset
        self.kind = kind
        guard kind.isDeterministic else { cache = nil; return }
        let key = HintProvider.cacheKey(dataset, kind)
        let safeName = dataset.name.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }
        let url = cacheDirectory.appendingPathComponent("\(String(safeName))-\(kind.rawValue)-\(key.hex).hints")
        if let data = FileManager.default.contents(atPath: url.path) {
            let bytes = [UInt8](data)
            let expected = key.header.count + dataset.count * dataset.height * dataset.width
            guard bytes.count == expected, Array(bytes[..<key.header.count]) == key.header else {
                throw DatasetError.staleCache(path: url.path, reason: "\(bytes.count) bytes, expected \(expected) "
                    + "with header for \(dataset.count)x\(dataset.height)x\(dataset.width) \(kind.rawValue)")
            }
            cache = Array(bytes[key.header.count...])
            return
        }
        let hints = HintProvider.computeAll(dataset, kind)
        do {
            try FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
            try FileOutput.write(key.header + hints, to: url)
        } catch let error as DatasetError {
            throw error
        } catch {
            throw DatasetError.cannotWrite(path: url.path, reason: "\(error.localizedDescription)")
        }
        cache = hints
    }

    /// hint for sample i, (hint_channels=1, H, W) in [0, 1]. `seed` drives random kinds (a pure function of seed
    /// and i, so every rank and a resumed run get the same hint).
    public func hint(_ i: Int, seed: UInt64, into out: UnsafeMutablePointer<Float>) {
        let n = dataset.height * dataset.width
        if let cache {
            precondition(i >= 0 && i < dataset.count, "sample index \(i) out of range 0..<\(dataset.count)")
            cache.withUnsafeBufferPointer { c in
                for k in 0 ..< n { out[k] = Float(c[i * n + k]) / 255 }
            }
            return
        }
        let bytes = hintBytes(i, seed: seed)
        for k in 0 ..< n { out[k] = Float(bytes[k]) / 255 }
    }

    /// The uint8 hint of sample i (0...255 for [0, 1]). result: (H, W).
    public func hintBytes(_ i: Int, seed: UInt64) -> [UInt8] {
        precondition(i >= 0 && i < dataset.count, "sample index \(i) out of range 0..<\(dataset.count)")
        let n = dataset.height * dataset.width
        if let cache { return Array(cache[i * n ..< (i + 1) * n]) }
        var gray = HintProvider.grayImage(dataset, i)
        var out = [UInt8](repeating: 0, count: n)
        gray.withUnsafeMutableBufferPointer { g in
            out.withUnsafeMutableBufferPointer { o in
                Hints.compute(kind, image: g.baseAddress!, height: dataset.height, width: dataset.width,
                              seed: seed, index: i, into: o.baseAddress!)
            }
        }
        return out
    }

    /// Image i as one gray channel (the rounded mean of its channels). result: (H, W).
    static func grayImage(_ d: ImageDataset, _ i: Int) -> [UInt8] {
        let n = d.height * d.width
        let image = d.rawImage(i)
        if d.channels == 1 { return Array(image) }
        let base = image.startIndex
        return (0 ..< n).map { k in
            var s = 0
            for c in 0 ..< d.channels { s += Int(image[base + c * n + k]) }
            return UInt8((s + d.channels / 2) / d.channels)
        }
    }

    /// All N hints of a deterministic kind, computed on every core. result: (N, H, W).
    static func computeAll(_ d: ImageDataset, _ kind: HintKind) -> [UInt8] {
        let n = d.height * d.width
        var all = [UInt8](repeating: 0, count: d.count * n)
        let chunks = min(d.count, 4 * max(1, ProcessInfo.processInfo.activeProcessorCount))
        all.withUnsafeMutableBufferPointer { buf in
            nonisolated(unsafe) let base = buf.baseAddress!  // chunks write disjoint ranges
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                for i in (c * d.count / chunks) ..< ((c + 1) * d.count / chunks) {
                    var gray = grayImage(d, i)
                    gray.withUnsafeMutableBufferPointer { g in
                        Hints.compute(kind, image: g.baseAddress!, height: d.height, width: d.width,
                                      index: i, into: base + i * n)
                    }
                }
            }
        }
        return all
    }

    /// Header bytes that identify a cache file's contents, and a short hex id for its name.
    private static func cacheKey(_ d: ImageDataset, _ kind: HintKind) -> (header: [UInt8], hex: String) {
        let crc = d.pixels.withUnsafeBufferPointer { p -> UInt in
            var c = crc32(0, nil, 0)
            var offset = 0
            while offset < p.count {  // crc32 takes a 32-bit length
                let len = min(p.count - offset, 1 << 30)
                c = crc32(c, p.baseAddress! + offset, UInt32(len))
                offset += len
            }
            return c
        }
        var header = Array("HINTS1 \(kind.rawValue) \(d.count)x\(d.channels)x\(d.height)x\(d.width) crc \(crc)\n".utf8)
        header += [UInt8](repeating: 0x20, count: (16 - header.count % 16) % 16)
        return (header, String(crc, radix: 16))
    }
}
