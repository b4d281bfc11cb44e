// The sampler: epochs are seeded permutations, ranks get disjoint shards covering each global batch, the last
// incomplete batch is dropped, and (epoch, index) saved mid-run resumes the exact same sequence.
import Datasets
import Foundation
import XCTest

final class EpochSamplerTests: XCTestCase {
    func testEpochIsAPermutationWithTheTailDropped() {
        var s = EpochSampler(datasetCount: 103, seed: 7, globalBatch: 10)
        XCTAssertEqual(s.batchesPerEpoch, 10)
        var seen: [Int] = []
        for _ in 0 ..< 10 { seen += s.nextGlobalBatch() }
        XCTAssertEqual(Set(seen).count, 100, "no repeats within an epoch")
        XCTAssertTrue(seen.allSatisfy { (0 ..< 103).contains($0) })
        XCTAssertEqual(seen, Array(EpochSampler.permutation(count: 103, seed: 7, epoch: 0).prefix(100)))
        XCTAssertEqual([s.epoch, s.index], [1, 0], "rolled to the next epoch after the last full batch")
        XCTAssertNotEqual(EpochSampler.permutation(count: 103, seed: 7, epoch: 0), Array(0 ..< 103), "shuffled")
    }

    func testEpochsAndSeedsDiffer() {
        let e0 = EpochSampler.permutation(count: 50, seed: 1, epoch: 0)
        XCTAssertNotEqual(e0, EpochSampler.permutation(count: 50, seed: 1, epoch: 1))
        XCTAssertNotEqual(e0, EpochSampler.permutation(count: 50, seed: 2, epoch: 0))
        XCTAssertEqual(e0, EpochSampler.permutation(count: 50, seed: 1, epoch: 0))
        XCTAssertEqual(Set(e0), Set(0 ..< 50))
    }

    func testShardsAreDisjointAndCoverTheBatch() {
        var s = EpochSampler(datasetCount: 60, seed: 3, globalBatch: 12)
        for _ in 0 ..< 7 {
            let global = s.nextGlobalBatch()
            for world in [1, 2, 3, 4, 6, 12] {
                let shards = (0 ..< world).map { EpochSampler.shard(global, rank: $0, worldSize: world) }
                XCTAssertTrue(shards.allSatisfy { $0.count == 12 / world })
                XCTAssertEqual(shards.flatMap { Array($0) }, global, "in rank order the shards rebuild the batch")
                XCTAssertEqual(Set(shards.flatMap { Array($0) }).count, 12, "disjoint")
            }
        }
    }

    func testEachRankComputesTheSameBatchesIndependently() {
        // Ranks never talk about data: each runs its own sampler and takes its slice.
        var ranks = (0 ..< 4).map { _ in EpochSampler(datasetCount: 40, seed: 11, globalBatch: 8) }
        for _ in 0 ..< 12 {
            let parts = (0 ..< 4).map { r in EpochSampler.shard(ranks[r].nextGlobalBatch(), rank: r, worldSize: 4) }
            XCTAssertEqual(Set(parts.flatMap { Array($0) }).count, 8)
        }
    }

    func testSaveAndResumeReplaysExactly() throws {
        var original = EpochSampler(datasetCount: 37, seed: 99, globalBatch: 5)
        for _ in 0 ..< 9 { _ = original.nextGlobalBatch() }  // mid-epoch 1
        XCTAssertEqual([original.epoch, original.index], [1, 10])
        let saved = try JSONEncoder().encode(original)
        var decoded = try JSONDecoder().decode(EpochSampler.self, from: saved)
        var rebuilt = try EpochSampler(datasetCount: 37, seed: 99, globalBatch: 5, epoch: original.epoch, index: original.index)
        XCTAssertEqual(decoded, original)
        XCTAssertEqual(rebuilt, original)
        for _ in 0 ..< 20 {
            let expected = original.nextGlobalBatch()
            XCTAssertEqual(decoded.nextGlobalBatch(), expected)
            XCTAssertEqual(rebuilt.nextGlobalBatch(), expected)
        }
        XCTAssertEqual(decoded, original)
    }

    func testResumeValidatesThePosition() {
        XCTAssertThrowsError(try EpochSampler(datasetCount: 37, seed: 1, globalBatch: 5, epoch: -1, index: 0))
        XCTAssertThrowsError(try EpochSampler(datasetCount: 37, seed: 1, globalBatch: 5, epoch: 0, index: 33)) { e in
            XCTAssertTrue("\(e)".contains("0...32"), "\(e)")
        }
        XCTAssertNoThrow(try EpochSampler(datasetCount: 37, seed: 1, globalBatch: 5, epoch: 2, index: 32))
        let bad = Data(#"{"datasetCount":10,"seed":1,"globalBatch":4,"epoch":0,"index":8}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(EpochSampler.self, from: bad))
    }
}
