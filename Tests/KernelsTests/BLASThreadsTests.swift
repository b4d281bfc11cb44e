// The per-rank OpenBLAS thread rule: a rank's share of the node's cores, never more than it is bound to, and an
// explicit thread variable always wins.
import XCTest
import Kernels

final class BLASThreadsTests: XCTestCase {
    func testRecommendedThreadsShareTheNode() {
        XCTAssertEqual(BLASRuntime.recommendedThreads(onlineCores: 2, allowedCores: 2, ranksOnThisNode: 1), 2)
        XCTAssertEqual(BLASRuntime.recommendedThreads(onlineCores: 2, allowedCores: 2, ranksOnThisNode: 2), 1)
        XCTAssertEqual(BLASRuntime.recommendedThreads(onlineCores: 2, allowedCores: 1, ranksOnThisNode: 2), 1)
        // bound to one core by mpirun --bind-to core
        XCTAssertEqual(BLASRuntime.recommendedThreads(onlineCores: 16, allowedCores: 1, ranksOnThisNode: 1), 1)
        // two ranks sharing an 8-core socket of a 16-core node: 16 / 4 ranks = 4 each
        XCTAssertEqual(BLASRuntime.recommendedThreads(onlineCores: 16, allowedCores: 8, ranksOnThisNode: 4), 4)
        // more ranks than cores still runs one thread each
        XCTAssertEqual(BLASRuntime.recommendedThreads(onlineCores: 2, allowedCores: 2, ranksOnThisNode: 8), 1)
    }

    func testRanksOnThisNodeFromLauncherVariables() {
        XCTAssertEqual(BLASRuntime.ranksOnThisNode(environment: [:]), 1)
        XCTAssertEqual(BLASRuntime.ranksOnThisNode(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "2"]), 2)
        XCTAssertEqual(BLASRuntime.ranksOnThisNode(environment: ["MPI_LOCALNRANKS": "4"]), 4)
        XCTAssertEqual(BLASRuntime.ranksOnThisNode(environment: ["SLURM_TASKS_PER_NODE": "2(x3)"]), 2)
        XCTAssertEqual(BLASRuntime.ranksOnThisNode(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "junk"]), 1)
    }

    func testExplicitThreadVariableWins() {
        let before = BLASRuntime.threads
        let result = BLASRuntime.configureThreads(ranksOnThisNode: 64, environment: ["OPENBLAS_NUM_THREADS": "3"])
        XCTAssertEqual(result.source, .environment("OPENBLAS_NUM_THREADS"))
        XCTAssertEqual(BLASRuntime.threads, before, "the environment's choice is left to OpenBLAS")
    }

    func testConfigureSetsTheShare() {
        let before = BLASRuntime.threads
        defer { BLASRuntime.setThreads(before) }
        let result = BLASRuntime.configureThreads(ranksOnThisNode: 1_000, environment: [:])
        XCTAssertEqual(result.threads, 1)
        XCTAssertEqual(BLASRuntime.threads, 1)
        XCTAssertGreaterThanOrEqual(BLASRuntime.allowedCores, 1)
        XCTAssertLessThanOrEqual(BLASRuntime.allowedCores, BLASRuntime.onlineCores)
    }
}
