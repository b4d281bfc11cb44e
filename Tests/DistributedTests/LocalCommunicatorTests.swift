// Tests of the one-process communicator (its reductions must leave every bit alone: -0, NaN payloads, subnormals),
// the backend choice and the Int32 chunking used by the MPI backend. Multi-rank behaviour, and the MPI errors'
// messages, are tested under mpirun by scripts/mpi-tests/*.sh (controlnet comm-check).
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import Distributed

final class LocalCommunicatorTests: XCTestCase {
    func testAverageOfOneRankIsBitwiseIdentity() throws {
        let comm = LocalCommunicator()
        // Awkward values on purpose: a scale-by-1/size or a sum with zero would disturb -0, NaN payloads or subnormals.
        var values: [Float] = [1.5, -0.0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, 3.4e38, -7.25]
        values += (0 ..< 1000).map { Float($0) * 0.37 - 100 }
        let before = values.map(\.bitPattern)
        try values.withUnsafeMutableBufferPointer { try comm.allReduceAverage($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(values.map(\.bitPattern), before)
        // count 0 with a real pointer is a valid no-op.
        try values.withUnsafeMutableBufferPointer { try comm.allReduceAverage($0.baseAddress!, count: 0) }
        XCTAssertEqual(values.map(\.bitPattern), before)
    }

    func testReductionsOfOneRankAreIdentity() throws {
        let comm = LocalCommunicator()
        for op in [ReduceOp.sum, .max, .min] {
            var values: [Double] = [2.5, -1, 0, .infinity, 1e300]
            try comm.allReduce(&values, op: op)
            XCTAssertEqual(values, [2.5, -1, 0, .infinity, 1e300], "op \(op)")
            var empty: [Double] = []
            try comm.allReduce(&empty, op: op)
            XCTAssertEqual(empty, [])
            XCTAssertEqual(try comm.allReduce(42.0, op: op), 42.0)
        }
        var nan: [Double] = [.nan]
        try comm.allReduce(&nan, op: .sum)
        XCTAssertTrue(nan[0].isNaN, "a non-finite flag must survive the reduction")
    }

    func testBroadcastFromRootLeavesBufferUnchanged() throws {
        let comm = LocalCommunicator()
        var bytes: [UInt8] = (0 ..< 257).map { UInt8($0 & 0xff) }
        try bytes.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, byteCount: $0.count, root: 0) }
        XCTAssertEqual(bytes, (0 ..< 257).map { UInt8($0 & 0xff) })
        var floats: [Float] = [1, 2, 3, -4.5]
        try floats.withUnsafeMutableBufferPointer { try comm.broadcast($0.baseAddress!, count: $0.count, root: 0) }
        XCTAssertEqual(floats, [1, 2, 3, -4.5])
    }
}

final class BackendChoiceTests: XCTestCase {
    private func withEnvironment(_ name: String, _ value: String?, _ body: () throws -> Void) rethrows {
        let old = getenv(name).map { String(cString: $0) }
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
        defer { if let old { setenv(name, old, 1) } else { unsetenv(name) } }
        try body()
    }

    private func withoutLauncher(_ body: () throws -> Void) rethrows {
        try withEnvironment("OMPI_COMM_WORLD_SIZE", nil) {
            try withEnvironment("PMIX_RANK", nil) {
                try withEnvironment("PMI_SIZE", nil, body)
            }
        }
    }

    func testLocalWithoutALauncher() throws {
        try withoutLauncher {
            XCTAssertFalse(Communicators.launchedByMPI)
            let comm = try Communicators.makeDefault()
            XCTAssertTrue(comm is LocalCommunicator)
            XCTAssertEqual(comm.backendName, "local")
        }
    }

    func testEachLauncherVariableIsDetected() {
        withoutLauncher {
            for name in Communicators.launcherVariables {
                withEnvironment(name, "2") { XCTAssertTrue(Communicators.launchedByMPI, name) }
                XCTAssertFalse(Communicators.launchedByMPI, "after removing \(name)")
            }
        }
    }
}

final class ChunkingTests: XCTestCase {
    private func chunks(_ count: Int, _ limit: Int) -> [[Int]] {
        var out: [[Int]] = []
        forEachChunk(count: count, limit: limit) { out.append([$0, Int($1)]) }
        return out
    }

    func testChunksCoverTheRangeInOrder() {
        XCTAssertEqual(chunks(0, 4), [])
        XCTAssertEqual(chunks(3, 4), [[0, 3]])
        XCTAssertEqual(chunks(8, 4), [[0, 4], [4, 4]])
        XCTAssertEqual(chunks(10, 4), [[0, 4], [4, 4], [8, 2]])
        XCTAssertEqual(chunks(5, 1), [[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]])
    }

    func testCountsPastInt32MaxAreSplitIntoInt32Calls() {
        let limit = Int(Int32.max)
        let count = 2 * limit + 5
        let pieces = chunks(count, limit)
        XCTAssertEqual(pieces, [[0, limit], [limit, limit], [2 * limit, 5]])
        XCTAssertEqual(pieces.reduce(0) { $0 + $1[1] }, count)
    }
}
