// Ranks compare one hash per option, so what they compare must have the same shape on every rank whatever the
// options: every key, absent ones as null. (The MPI side - a rank given --hint and one without, ranks started with
// different subcommands - is scripts/mpi-tests/45-rank-mismatch.sh.)
import XCTest
import Distributed
@testable import Training

final class RankAgreementTests: XCTestCase {
    func testEveryOptionKeyIsComparedWithNullForAbsentValues() {
        var bare = TrainOptions(); bare.base = nil; bare.hint = nil; bare.maxSteps = nil
        var full = bare; full.base = "b.safetensors"; full.hint = "canny"; full.maxSteps = 5; full.emaDecay = 0.999
        full.injectNonfinite = ["3", "4:1"]
        let a = RankAgreement.optionValues(bare), b = RankAgreement.optionValues(full)
        // Same keys in the same order: the reductions move arrays of one length on every rank.
        XCTAssertEqual(a.map(\.key), b.map(\.key))
        let every = Set(TrainOptions.CodingKeys.allCases.map(\.rawValue))
        XCTAssertTrue(every.isSubset(of: Set(a.map(\.key))), "missing: \(every.subtracting(a.map(\.key)))")
        let byKey = Dictionary(uniqueKeysWithValues: a.map { ($0.key, $0.value) })
        XCTAssertEqual(byKey["hint"], "null")
        XCTAssertEqual(byKey["max_steps"], "null")
        XCTAssertEqual(byKey["ema_decay"], "null")
        let full2 = Dictionary(uniqueKeysWithValues: b.map { ($0.key, $0.value) })
        XCTAssertEqual(full2["hint"], "\"canny\"")
        XCTAssertEqual(full2["max_steps"], "5")
        // Differences are found by key.
        let differing = zip(a, b).filter { $0.value != $1.value }.map(\.0.key)
        XCTAssertEqual(Set(differing), ["base", "hint", "max_steps", "ema_decay", "inject_nonfinite"])
    }

    func testOneRankAgreesWithItselfWithoutCollectives() throws {
        XCTAssertNoThrow(try Communicators.agreeOnCommand("sample", comm: LocalCommunicator()))
        XCTAssertNoThrow(try RankAgreement.check(RankAgreement.optionValues(TrainOptions()), comm: LocalCommunicator(),
                                                 what: RankAgreement.flag))
        let e = LaunchMismatch(rank: 1, size: 2, command: "sample", rootCommand: "train-base")
        XCTAssertTrue(e.description.contains("rank 0 runs 'train-base', this rank runs 'sample'"), e.description)
        XCTAssertTrue(e.description.contains("mpirun -np 2 controlnet train-base"), e.description)
    }
}
