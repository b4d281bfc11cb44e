// The watchdog's moving parts for real: heartbeats between two UDP sockets of this process (and a stranger's
// datagrams ignored), the side channel's start-up over a communicator, and the watchdog thread warning about and
// then timing out a collective that really blocks.
import Dispatch
import Synchronization
import XCTest
@testable import Distributed

/// A 2-rank communicator whose all-reduce blocks until released; the other calls return at once.
final class BlockingCommunicator: Communicator, @unchecked Sendable {
    let rank: Int
    let size = 2
    let release = DispatchSemaphore(value: 0)
    init(rank: Int) { self.rank = rank }
    var backendName: String { "blocking" }
    func allReduceAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    func allReduce(_ values: inout [Double], op: ReduceOp) throws { release.wait() }
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {}
    func barrier() throws {}
    func abort(code: Int32, message: String) -> Never { fatalError("abort(\(code)): \(message)") }
    func finalize() {}
}

final class PeerBeaconTests: XCTestCase {
    func beacon(rank: Int, token: UInt64, host: String, to port: UInt16?) throws -> (PeerBeacon, UInt16) {
        let (fd, own) = try PeerBeacon.openSocket().get()
        let targets = port.map { [PeerBeacon.Address(ip: PeerBeacon.ipValue("127.0.0.1")!, port: $0.bigEndian)] } ?? []
        return (PeerBeacon(rank: rank, size: 2, fd: fd, token: token, host: host, targets: targets,
                           clock: SystemWatchdogClock()), own)
    }

    func testHeartbeatsGoToRankZeroAndBack() throws {
        let (zero, port) = try beacon(rank: 0, token: 42, host: "hostA", to: nil)
        let (one, _) = try beacon(rank: 1, token: 42, host: "hostB", to: port)
        let (stranger, _) = try beacon(rank: 1, token: 7, host: "intruder", to: port)
        defer { zero.stop(); one.stop(); stranger.stop() }
        let busy = RankActivity(collectives: 12, phase: .collective, step: 3, operation: "all-reduce (sum of 3 doubles) #12",
                                seconds: 4.25)
        let idle = RankActivity(collectives: 11, phase: .computing, step: nil, operation: "", seconds: 0.5)
        one.exchange(busy, seconds: 0)
        stranger.exchange(idle, seconds: 0)
        zero.exchange(idle, seconds: 0.3)
        let heard = zero.peers()
        XCTAssertEqual(heard.count, 1, "one heartbeat of this job; the other token's is ignored")
        XCTAssertEqual(heard.first?.host, "hostB")
        XCTAssertEqual(heard.first?.activity, busy)
        XCTAssertEqual(heard.first?.pid, Int(getpid()))
        XCTAssertLessThan(heard.first?.heardAgo ?? 99, 1)
        XCTAssertTrue(one.peers().isEmpty)
        zero.exchange(idle, seconds: 0)  // rank 0 answers whom it has heard
        one.exchange(busy, seconds: 0.3)
        XCTAssertEqual(one.peers().map(\.rank), [0])
        XCTAssertEqual(one.peers().first?.activity, idle)
    }

    /// Rank 0 answers a rank the first time it hears it, within the same tick: a link cut one tick after the
    /// start must not leave a rank that has never heard rank 0.
    func testRankZeroAnswersANewRankAtOnce() throws {
        let (zero, port) = try beacon(rank: 0, token: 42, host: "hostA", to: nil)
        let (one, _) = try beacon(rank: 1, token: 42, host: "hostB", to: port)
        let (stranger, _) = try beacon(rank: 1, token: 7, host: "intruder", to: port)
        defer { zero.stop(); one.stop(); stranger.stop() }
        let idle = RankActivity(collectives: 1, phase: .computing, step: nil, operation: "", seconds: 0.5)
        one.exchange(idle, seconds: 0)
        stranger.exchange(idle, seconds: 0)
        zero.exchange(idle, seconds: 0.3)   // rank 0's one tick: it had heard nobody when it began
        one.exchange(idle, seconds: 0.3)
        XCTAssertEqual(one.peers().map(\.rank), [0], "rank 0's answer should not wait for its next tick")
        stranger.exchange(idle, seconds: 0.1)
        XCTAssertTrue(stranger.peers().isEmpty, "another job's beacon got an answer")
    }

    func testWireFormatRoundTripsAndRejectsForeignText() throws {
        let (a, _) = try beacon(rank: 0, token: 0xabc, host: "n1", to: nil)
        let (b, _) = try beacon(rank: 1, token: 0xabc, host: "n2", to: nil)
        defer { a.stop(); b.stop() }
        let activity = RankActivity(collectives: 3, phase: .region, step: 100, operation: "checkpoint of step 100 (in barrier #3)",
                                    seconds: 61.5)
        XCTAssertEqual(a.decode(b.encode(activity))?.activity, activity)
        XCTAssertNil(b.decode(b.encode(activity)), "a rank ignores its own heartbeat")
        XCTAssertNil(a.decode("hello"))
        XCTAssertNil(a.decode("cnwd1 abc 5 1 1 collective 1 10 h op"), "rank 5 is not in a 2-rank job")
    }

    func testStartOverACommunicator() throws {
        let (root, problem) = try PeerBeacon.start(over: BlockingCommunicator(rank: 0))
        XCTAssertNotNil(root)
        XCTAssertNil(problem)
        root?.stop()
        // The fake broadcast delivers nothing, as if rank 0 had no socket: rank 1 then says so and runs without.
        let (other, why) = try PeerBeacon.start(over: BlockingCommunicator(rank: 1))
        XCTAssertNil(other)
        XCTAssertTrue(why?.contains("rank 0 has no UDP side channel") ?? false, why ?? "nil")
        XCTAssertEqual(PeerBeacon.ipText(PeerBeacon.ipValue("10.77.0.2")!), "10.77.0.2")
        XCTAssertNil(PeerBeacon.ipValue("10.77.0"))
    }
}

final class WatchdogThreadTests: XCTestCase {
    func testTheThreadWarnsThenEndsACollectiveThatBlocks() throws {
        let base = BlockingCommunicator(rank: 0)
        let captured = Captured()
        let settings = WatchdogSettings(stallWarning: 0.3, collectiveTimeout: 1.0, tick: 0.05)
        // "Terminating" releases the blocked call, so the test can go on where a real rank would have exited.
        let comm = try WatchedCommunicator(base, settings: settings,
                                           output: captured.output(onTerminate: { base.release.signal() }))
        defer { comm.finalize() }
        comm.markStep(7)
        let start = DispatchTime.now()
        XCTAssertEqual(try comm.allReduce(1.0, op: .sum), 1.0)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) * 1e-9
        XCTAssertGreaterThanOrEqual(seconds, 1.0)
        XCTAssertLessThan(seconds, 3.0, "the timeout fired late")
        XCTAssertEqual(captured.exitCodes, [75])
        let warnings = captured.warningTexts.filter { $0.hasPrefix("stalled for") }
        XCTAssertGreaterThanOrEqual(warnings.count, 2, "\(captured.warningTexts)")
        XCTAssertTrue(warnings[0].contains("all-reduce (sum of 1 doubles) #1 at step 7"), warnings[0])
        XCTAssertTrue(warnings[0].contains("no heartbeat ever received from rank(s) 1"), warnings[0])
        XCTAssertTrue(captured.errorTexts.first?.contains("has not completed after 1.0 s") ?? false, "\(captured.errorTexts)")
        XCTAssertFalse(captured.warningTexts.contains { $0.contains("completed after") && $0.contains("run continues") },
                       "a timed-out collective is not reported as recovered")
    }

    func testMarksOnAnUnwatchedCommunicatorDoNothing() throws {
        let comm: any Communicator = LocalCommunicator()
        comm.markStep(3)
        XCTAssertNil(comm.attachedWatchdog)
        XCTAssertEqual(comm.watched("checkpoint of step 3") { 5 }, 5)
    }

    func testStopReturnsPromptly() throws {
        let comm = try WatchedCommunicator(LocalCommunicator(), settings: WatchdogSettings(stallWarning: 60, collectiveTimeout: 600))
        XCTAssertEqual(comm.watchdog.settings.tick, 1)
        let start = DispatchTime.now()
        comm.finalize()
        comm.finalize()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) * 1e-9
        XCTAssertLessThan(seconds, 0.5, "stopping waits for the tick instead of waking the thread")
    }
}
