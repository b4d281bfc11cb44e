// Under a file-size limit (ulimit -f) every write past it fails with EFBIG (SIGXFSZ is ignored, as the CLI does
// at start): each writer must report it naming the file and the limit, leave no partial file at the target, and
// never crash - including a message to a standard error that is itself a file past the limit.
import XCTest
import Foundation
import Datasets
import Kernels
import SafeTensors
import Training

final class FileSizeLimitTests: XCTestCase {
    /// Runs `body` with writes limited to `bytes` per file, restoring the limit after.
    func withFileSizeLimit<T>(_ bytes: Int, _ body: () throws -> T) rethrows -> T {
        signal(SIGXFSZ, SIG_IGN)
        var old = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        var small = old; small.rlim_cur = rlim_t(bytes)
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &small)
        defer { setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old) }
        return try body()
    }

    func testEveryWriterNamesTheFileAndTheLimit() throws {
        let ws = try Workspace()
        let big = [UInt8](repeating: 7, count: 64 << 10)
        // Whole files (PNG grids, eval --json, hint caches, dataset manifests): the temporary file goes too.
        let json = ws.root.appendingPathComponent("report.json")
        assertRefused(try withFileSizeLimit(4096) { try FileOutput.write(big, to: json) }, [json.path, "ulimit -f"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: ws.root.path).filter { $0.contains("report") }, [])
        // A PNG whose encoding is larger than the limit (noise does not compress).
        var noise = [UInt8](repeating: 0, count: 256 * 256)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in noise.indices { state ^= state << 13; state ^= state >> 7; state ^= state << 17; noise[i] = UInt8(truncatingIfNeeded: state >> 32) }
        let png = ws.root.appendingPathComponent("grid.png")
        assertRefused(try withFileSizeLimit(4096) { try PNG.write(gray: noise, width: 256, height: 256, to: png) },
                      [png.path, "ulimit -f"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: png.path))
        // Checkpoint shards and manifests.
        let shard = ws.root.appendingPathComponent("shard.safetensors")
        assertRefused(try withFileSizeLimit(4096) { try AtomicFile.write(big, to: shard) }, ["shard.safetensors", "ulimit -f"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: shard.path))
        // safetensors files (sample --out, export, weights).
        var w = SafeTensorsWriter()
        try w.add("x", shape: [16_384], floats: [Float](repeating: 1, count: 16_384))
        let st = ws.root.appendingPathComponent("out.safetensors")
        assertRefused(try withFileSizeLimit(4096) { try w.write(to: st, metadata: [:]) }, [st.path, "File too large"])
        // metrics.jsonl: the record is refused whole, with the reason.
        let metrics = ws.root.appendingPathComponent("metrics.jsonl")
        let log = try RunLog(rank: 0, metricsURL: metrics, keepStepsThrough: nil)
        try log.metric(["step": 0, "note": "fits"])
        let long = String(repeating: "x", count: 8192)
        assertRefused(try withFileSizeLimit(4096) { try log.metric(["step": 1, "note": long]) },
                      [metrics.path, "ulimit -f"])
        let text = try String(contentsOf: metrics, encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, 1, "no torn line: \(text.prefix(200))")
    }

    func testAMessageToAStandardErrorPastTheLimitIsDroppedNotFatal() throws {
        let ws = try Workspace()
        let path = ws.path("stderr.txt")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let saved = dup(2)
        dup2(fd, 2)
        defer { dup2(saved, 2); close(saved); close(fd) }
        withFileSizeLimit(64) {
            // FileHandle.standardError.write would trap here (EFBIG); Console drops what does not fit.
            Console.error(String(repeating: "warning: the disk is full\n", count: 20))
            Console.error("another\n")
        }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
        XCTAssertEqual(size, 64)
    }
}
