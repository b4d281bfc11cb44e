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

    func testCommandLinesReadAsOptionValuePairsWhateverTheSpelling() {
        let a = RankAgreement.commandLineValues(["--count", "5", "--control", "a.st:0.5", "--control=b.st", "--seed=3",
                                                 "--guess-mode"])
        let b = RankAgreement.commandLineValues(["--seed", "3", "--guess-mode", "--count=5", "--control", "a.st:0.5",
                                                 "--control", "b.st"])
        XCTAssertEqual(a.map(\.key), ["--control", "--count", "--guess-mode", "--seed"])
        XCTAssertEqual(a.map(\.value), b.map(\.value), "the same options in another order and spelling agree")
        // Repeated options keep their order: the controls in another order are another job.
        let swapped = RankAgreement.commandLineValues(["--control", "b.st", "--control", "a.st:0.5", "--count", "5",
                                                       "--seed", "3", "--guess-mode"])
        XCTAssertNotEqual(a.first?.value, swapped.first?.value)
        // Negative numbers are values, and words before the first option are positional.
        let c = RankAgreement.commandLineValues(["ckpt", "--guidance-start", "-1"])
        XCTAssertEqual(c.map(\.key), ["--guidance-start", "positional arguments"])
        XCTAssertEqual(c.map(\.value), ["-1", "ckpt"])
    }
}
