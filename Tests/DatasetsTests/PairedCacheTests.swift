// The decode cache: reused when nothing changed (no decoding, same bytes), rebuilt when a source file changes or the
// settings differ, rebuilt over a damaged file, and built once when two loaders race for it.
import Datasets
import Foundation
import XCTest

final class PairedCacheTests: XCTestCase {
    private func cacheFiles(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".cache") }.sorted()
    }

    func testReusedWhenUnchangedRebuiltWhenAFileChanges() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        try FillCircles.generate(count: 4, size: 16, seed: 5, to: dir)
        let settings = try DecodeSettings(size: 8, imageChannels: 3, conditioningChannels: 1, filter: .area)
        var calls = 0
        let first = try PairedDataset.open(directory: dir).load(settings: settings, cacheDirectory: cache) { _, _ in calls += 1 }
        XCTAssertFalse(first.reused)
        XCTAssertGreaterThan(calls, 0)
        calls = 0
        let second = try PairedDataset.open(directory: dir).load(settings: settings, cacheDirectory: cache) { _, _ in calls += 1 }
        XCTAssertTrue(second.reused)
        XCTAssertEqual(calls, 0, "nothing decoded")
        XCTAssertEqual(second.cacheFile, first.cacheFile)
        XCTAssertEqual(Array(second.images), Array(first.images))
        XCTAssertEqual(Array(second.conditions), Array(first.conditions))
        XCTAssertEqual(second.prompts, first.prompts)

        // Replace target/1.png with another picture: its size or time changes, so the cache is rebuilt.
        let white = [UInt8](repeating: 255, count: 16 * 16 * 3)
        Thread.sleep(forTimeInterval: 0.01)
        try PNG.write(rgb: white, width: 16, height: 16, to: dir.appendingPathComponent("target/1.png"))
        let third = try PairedDataset.open(directory: dir).load(settings: settings, cacheDirectory: cache)
        XCTAssertFalse(third.reused)
        XCTAssertNotEqual(third.cacheFile, first.cacheFile)
        XCTAssertEqual(try cacheFiles(cache), [third.cacheFile.lastPathComponent], "the superseded cache is deleted")
        XCTAssertEqual(Array(first.images[0 ..< 192]), Array(third.images[0 ..< 192]), "a mapping outlives the unlink")
        XCTAssertEqual(Array(third.images[192 ..< 384]), [UInt8](repeating: 255, count: 192))
        XCTAssertEqual(Array(third.images[0 ..< 192]), Array(first.images[0 ..< 192]))
        // A changed prompt alone also changes the key.
        let manifest = dir.appendingPathComponent("prompt.json")
        let text = try String(contentsOf: manifest, encoding: .utf8)
        try text.replacingOccurrences(of: "\"prompt\": \"", with: "\"prompt\": \"a ").write(to: manifest, atomically: true, encoding: .utf8)
        let fourth = try PairedDataset.open(directory: dir).load(settings: settings, cacheDirectory: cache)
        XCTAssertFalse(fourth.reused)
        XCTAssertTrue(fourth.prompts.allSatisfy { $0.hasPrefix("a ") })
    }

    func testEachSettingHasItsOwnCacheFile() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        try FillCircles.generate(count: 2, size: 16, seed: 5, to: dir)
        let data = try PairedDataset.open(directory: dir)
        var names = Set<String>()
        for s in [try DecodeSettings(size: 8, imageChannels: 3, conditioningChannels: 1, filter: .area),
                  try DecodeSettings(size: 8, imageChannels: 3, conditioningChannels: 1, filter: .bilinear),
                  try DecodeSettings(size: 4, imageChannels: 3, conditioningChannels: 1, filter: .area),
                  try DecodeSettings(size: 8, imageChannels: 1, conditioningChannels: 1, filter: .area),
                  try DecodeSettings(size: 8, imageChannels: 3, conditioningChannels: 3, filter: .area)] {
            let loaded = try data.load(settings: s, cacheDirectory: cache)
            XCTAssertFalse(loaded.reused)
            XCTAssertEqual(loaded.images.count, 2 * s.imageBytes)
            XCTAssertEqual(loaded.conditions.count, 2 * s.conditionBytes)
            names.insert(loaded.cacheFile.lastPathComponent)
        }
        XCTAssertEqual(names.count, 5)
        XCTAssertEqual(try cacheFiles(cache).count, 5, "other settings' caches are kept")
        assertImageError(try DecodeSettings(size: 0, imageChannels: 3, conditioningChannels: 3), mentions: ["size = 0"])
        assertImageError(try DecodeSettings(size: 8, imageChannels: 4, conditioningChannels: 3),
                         mentions: ["imageChannels = 4", "1 (gray) or 3 (RGB)"])
    }

    func testADamagedCacheFileIsRebuilt() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        try FillCircles.generate(count: 3, size: 16, seed: 9, to: dir)
        let data = try PairedDataset.open(directory: dir)
        let settings = try DecodeSettings(size: 8, imageChannels: 3, conditioningChannels: 1)
        let good = try data.load(settings: settings, cacheDirectory: cache)
        let want = Array(good.images)
        for damage in ["truncate", "garbage"] {
            let bytes = try Data(contentsOf: good.cacheFile)
            let bad = damage == "truncate" ? bytes.prefix(bytes.count - 5) : Data(repeating: 7, count: bytes.count)
            try bad.write(to: good.cacheFile)
            let again = try data.load(settings: settings, cacheDirectory: cache)
            XCTAssertFalse(again.reused, damage)
            XCTAssertEqual(Array(again.images), want, damage)
        }
    }

    func testConcurrentLoadersDecodeOnce() throws {
        let dir = try makeScratchDirectory(self), cache = try makeScratchDirectory(self)
        try FillCircles.generate(count: 24, size: 32, seed: 4, to: dir)
        let data = try PairedDataset.open(directory: dir)
        let settings = try DecodeSettings(size: 16, imageChannels: 3, conditioningChannels: 1)
        let results = LockedResults()
        DispatchQueue.concurrentPerform(iterations: 3) { k in
            do {
                let loaded = try data.load(settings: settings, cacheDirectory: cache, threads: k + 1)
                results.append((loaded.reused, Array(loaded.images) + Array(loaded.conditions)))
            } catch {
                results.append((false, []))
            }
        }
        let all = results.values
        XCTAssertEqual(all.count, 3)
        XCTAssertEqual(all.filter { !$0.0 }.count, 1, "one loader decoded, the others waited and mapped its file")
        XCTAssertEqual(Set(all.map(\.1)).count, 1, "all see the same bytes")
        XCTAssertEqual(all[0].1.count, 24 * (768 + 256))
        let left = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        XCTAssertEqual(left.filter { $0.contains(".tmp-") }, [], "no temporary file left")
        XCTAssertEqual(try cacheFiles(cache).count, 1)
    }

    func testThreadedBuildEqualsSingleThreaded() throws {
        let dir = try makeScratchDirectory(self)
        try FillCircles.generate(count: 21, size: 20, seed: 8, to: dir)
        let data = try PairedDataset.open(directory: dir)
        let settings = try DecodeSettings(size: 12, imageChannels: 1, conditioningChannels: 3)
        let one = try data.load(settings: settings, cacheDirectory: try makeScratchDirectory(self), threads: 1)
        let three = try data.load(settings: settings, cacheDirectory: try makeScratchDirectory(self), threads: 3)
        XCTAssertEqual(Array(one.images), Array(three.images))
        XCTAssertEqual(Array(one.conditions), Array(three.conditions))
        XCTAssertEqual(try Data(contentsOf: one.cacheFile), try Data(contentsOf: three.cacheFile))
    }
}

private final class LockedResults: @unchecked Sendable {
    private var items: [(Bool, [UInt8])] = []
    private let lock = NSLock()
    func append(_ item: (Bool, [UInt8])) { lock.withLock { items.append(item) } }
    var values: [(Bool, [UInt8])] { lock.withLock { items } }
}
