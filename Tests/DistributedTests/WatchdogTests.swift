// Tests of the collective watchdog: the policy on a fake clock (when it warns, times out, records, and ignores
// time the process did not run), the report's naming of ranks that have not joined or went silent, the UDP
// heartbeats between two sockets of this process, and the real thread judging a collective that blocks.
import Dispatch
import Synchronization
import XCTest
@testable import Distributed

/// A clock the test moves by hand.
final class FakeClock: WatchdogClock {
    let time = Mutex<Double>(1000)
    func now() -> Double { time.withLock { $0 } }
    func wallNow() -> Double { 1_700_000_000 + now() }
    func advance(to t: Double) { time.withLock { $0 = t } }
}

/// Everything a watchdog printed, recorded and how it tried to end the process.
final class Captured: Sendable {
    let warnings = Mutex<[String]>([])
    let errors = Mutex<[String]>([])
    let exits = Mutex<[Int32]>([])
    let records = Mutex<[StallRecord]>([])

    func output(onTerminate: @escaping @Sendable () -> Void = {}) -> WatchdogOutput {
        WatchdogOutput(warn: { m in self.warnings.withLock { $0.append(m) } },
                       error: { m in self.errors.withLock { $0.append(m) } },
                       terminate: { code in self.exits.withLock { $0.append(code) }; onTerminate() })
    }
    var warningTexts: [String] { warnings.withLock { $0 } }
    var errorTexts: [String] { errors.withLock { $0 } }
    var exitCodes: [Int32] { exits.withLock { $0 } }
    var events: [StallRecord.Event] { records.withLock { $0.map(\.event) } }
}

final class WatchdogPolicyTests: XCTestCase {
    let clock = FakeClock()
    let captured = Captured()

    func makeWatchdog(rank: Int = 0, size: Int = 1, warning: Double = 5, timeout: Double = 20) -> Watchdog {
        let w = Watchdog(rank: rank, size: size, settings: WatchdogSettings(stallWarning: warning, collectiveTimeout: timeout, tick: 0.5),
                         output: captured.output(), clock: clock)
        w.setRecorder { [captured] r in captured.records.withLock { $0.append(r) } }
        return w
    }

    /// Polls every half second from `from` to `to` (as the thread would).
    func run(_ w: Watchdog, from: Double, to: Double, peers: [PeerStatus] = []) {
        var t = from
        while t <= to + 1e-9 { clock.advance(to: 1000 + t); w.poll(peers: peers); t += 0.5 }
    }

    func testWarnsAtTheLimitAndEveryLimitAfterThenSaysItRecovered() {
        let w = makeWatchdog()
        w.markStep(7)
        run(w, from: 0, to: 3)
        w.begin(.allReduceAverage(floats: 22064))
        run(w, from: 3, to: 7.5)
        XCTAssertEqual(captured.warningTexts.count, 0, "no warning before 5 s in the collective")
        run(w, from: 8, to: 8)
        XCTAssertEqual(captured.warningTexts.count, 1)
        XCTAssertTrue(captured.warningTexts[0].contains("stalled for 5.0 s in all-reduce (average of 22064 floats) #1 at step 7"),
                      captured.warningTexts[0])
        XCTAssertTrue(captured.warningTexts[0].contains("ends the job if it is still waiting at 20 s"))
        run(w, from: 8.5, to: 18)
        XCTAssertEqual(captured.warningTexts.count, 3, "again at 10 s and 15 s: \(captured.warningTexts)")
        clock.advance(to: 1000 + 18.2)
        w.end()
        XCTAssertEqual(captured.warningTexts.count, 4)
        XCTAssertTrue(captured.warningTexts[3].contains("at step 7 completed after 15 s stalled; the run continues"),
                      captured.warningTexts[3])
        XCTAssertTrue(w.flushRecords())
        XCTAssertEqual(captured.events, [.started, .recovered])
        let recovered = captured.records.withLock { $0[1] }
        XCTAssertEqual(recovered.seconds, 15.2, accuracy: 1e-6)
        XCTAssertEqual(recovered.step, 7)
        XCTAssertEqual(recovered.startUnix, 1_700_000_000 + 1003, accuracy: 1e-6)
        let fields = recovered.metric["stall"] as? [String: Any]
        XCTAssertEqual(fields?["event"] as? String, "recovered")
        XCTAssertEqual(fields?["operation"] as? String, "all-reduce (average of 22064 floats)")
        XCTAssertNotNil(fields?["end_unix"])
        XCTAssertNil(recovered.metric["step"], "no top-level step: tools read step records by that key")
        XCTAssertTrue(captured.exitCodes.isEmpty)
    }

    func testAShortCollectiveIsNotAStall() {
        let w = makeWatchdog()
        for i in 0 ..< 50 {
            clock.advance(to: 1000 + Double(i))
            w.watch(.barrier) { clock.advance(to: 1000 + Double(i) + 0.9) }
            w.poll()
        }
        XCTAssertTrue(captured.warningTexts.isEmpty)
        XCTAssertTrue(w.flushRecords())
        XCTAssertTrue(captured.events.isEmpty)
    }

    func testTimeoutPrintsTheOperationAndStepRecordsAndTerminates() {
        let w = makeWatchdog(warning: 5, timeout: 20)
        w.markStep(41)
        w.begin(.broadcast(bytes: 1000, root: 0))
        run(w, from: 0, to: 19.5)
        XCTAssertTrue(captured.exitCodes.isEmpty)
        run(w, from: 20, to: 22)
        XCTAssertEqual(captured.exitCodes, [75], "terminated once, with EX_TEMPFAIL")
        XCTAssertEqual(captured.errorTexts.count, 1)
        let error = captured.errorTexts[0]
        XCTAssertTrue(error.contains("broadcast (1000 bytes from rank 0) #1 at step 41 has not completed after 20 s"), error)
        XCTAssertEqual(captured.events.last, .timedOut)
    }

    func testARecorderThatHangsDelaysNeitherTheWarningsNorTheExit() {
        let w = makeWatchdog(warning: 5, timeout: 20)
        let hung = Mutex(false)
        w.setRecorder { _ in  // metrics.jsonl on a hung file system
            hung.withLock { $0 = true }
            while true { usleep(100_000) }
        }
        w.begin(.barrier)
        let start = SystemWatchdogClock().now()
        run(w, from: 0, to: 21)
        XCTAssertEqual(captured.warningTexts.count, 3, "warnings at 5, 10 and 15 s despite the stuck recorder")
        XCTAssertEqual(captured.exitCodes, [75])
        XCTAssertTrue(hung.withLock { $0 }, "the recorder was called")
        XCTAssertLessThan(SystemWatchdogClock().now() - start, Watchdog.exitDeadline + 1, "the exit waited for the recorder")
    }

    func testZeroDisablesTheTimeoutAndTheWarnings() {
        let quiet = makeWatchdog(warning: 0, timeout: 0)
        quiet.begin(.barrier)
        run(quiet, from: 0, to: 100)
        XCTAssertTrue(captured.warningTexts.isEmpty)
        XCTAssertTrue(captured.exitCodes.isEmpty)
        clock.advance(to: 1000)
        let warnOnly = makeWatchdog(warning: 5, timeout: 0)
        warnOnly.begin(.barrier)
        run(warnOnly, from: 0, to: 100)
        XCTAssertEqual(captured.warningTexts.count, 20)
        XCTAssertFalse(captured.warningTexts[0].contains("ends the job"))
        XCTAssertTrue(captured.exitCodes.isEmpty)
    }

    func testARegionIsJudgedFromItsStartAndNamesTheCollectiveInside() {
        let w = makeWatchdog()
        w.markStep(3)
        w.begin(.region("checkpoint of step 3"))
        run(w, from: 0, to: 2)
        w.begin(.barrier)
        run(w, from: 2.5, to: 5)
        XCTAssertEqual(captured.warningTexts.count, 1)
        XCTAssertTrue(captured.warningTexts[0].contains("in checkpoint of step 3 (in barrier #1) at step 3"),
                      captured.warningTexts[0])
        w.end()
        XCTAssertEqual(captured.warningTexts.count, 1, "the inner barrier's end is not the stall's end")
        w.end()
        XCTAssertTrue(captured.warningTexts[1].contains("checkpoint of step 3 at step 3 completed after"))
        XCTAssertTrue(w.flushRecords())
        XCTAssertEqual(captured.events, [.started, .recovered])
    }

    func testTimeTheProcessDidNotRunDoesNotCount() {
        let w = makeWatchdog(warning: 5, timeout: 20)
        w.begin(.barrier)
        run(w, from: 0, to: 2)
        run(w, from: 102, to: 104)  // SIGSTOPped for 100 s, then continued
        XCTAssertTrue(captured.exitCodes.isEmpty, "a suspension is not a stall: \(captured.errorTexts)")
        XCTAssertTrue(captured.warningTexts.first?.contains("did not run for 100 s") ?? false, "\(captured.warningTexts)")
        XCTAssertEqual(w.currentActivity().seconds, 4.5, accuracy: 1e-6)
    }

    func testCountsAndPhasesForHeartbeats() {
        let w = makeWatchdog()
        w.markStep(2)
        XCTAssertEqual(w.currentActivity().phase, .computing)
        w.watch(.barrier) {}
        w.begin(.allReduce(.sum, doubles: 3))
        let a = w.currentActivity()
        XCTAssertEqual(a.collectives, 2)
        XCTAssertEqual(a.phase, .collective)
        XCTAssertEqual(a.step, 2)
        XCTAssertEqual(a.operation, "all-reduce (sum of 3 doubles) #2")
    }

    func testSettingsProblemsNameTheOption() {
        XCTAssertNil(WatchdogSettings.problem(stallWarning: 60, collectiveTimeout: 600))
        XCTAssertNil(WatchdogSettings.problem(stallWarning: 0, collectiveTimeout: 0))
        XCTAssertNil(WatchdogSettings.problem(stallWarning: 700, collectiveTimeout: 0))
        XCTAssertEqual(WatchdogSettings.problem(stallWarning: 600, collectiveTimeout: 600)?.option, "--stall-warning")
        XCTAssertEqual(WatchdogSettings.problem(stallWarning: -1, collectiveTimeout: 600)?.option, "--stall-warning")
        XCTAssertEqual(WatchdogSettings.problem(stallWarning: 1, collectiveTimeout: .nan)?.option, "--collective-timeout")
        XCTAssertEqual(WatchdogSettings(stallWarning: 60, collectiveTimeout: 600).tick, 1)
        XCTAssertEqual(WatchdogSettings(stallWarning: 2, collectiveTimeout: 10).tick, 0.2, accuracy: 1e-12)
    }
}

final class StallReportTests: XCTestCase {
    func peer(_ rank: Int, _ collectives: Int, _ phase: RankActivity.Phase, step: Int = 5, heardAgo: Double = 0.4) -> PeerStatus {
        PeerStatus(rank: rank, host: "node\(rank)", pid: 100 + rank,
                   activity: RankActivity(collectives: collectives, phase: phase, step: step,
                                          operation: phase == .computing ? "" : "barrier #\(collectives)", seconds: 2),
                   heardAgo: heardAgo)
    }

    func testRankZeroNamesWhoHasNotJoinedAndWhoIsSilent() {
        let own = RankActivity(collectives: 10, phase: .collective, step: 5, operation: "barrier #10", seconds: 30)
        let peers = [peer(1, 10, .collective), peer(2, 9, .computing), peer(3, 10, .collective, heardAgo: 20),
                     peer(4, 11, .computing)]
        let r = StallReport(rank: 0, size: 6, own: own, collective: 10, peers: peers, silentAfter: 3)
        XCTAssertEqual(r.notJoined, [2])
        XCTAssertEqual(r.silent, [3])
        XCTAssertTrue(r.peerText.contains("; silent: rank 3 on node3 (no heartbeat for 20 s: stopped or hung, or node3 unreachable)"), r.peerText)
        XCTAssertTrue(r.peerText.contains("; not joined: rank 2 on node2 (computing at step 5 for 2.4 s)"), r.peerText)
        XCTAssertTrue(r.peerText.contains("2 of 5 other ranks joined"), r.peerText)
        XCTAssertTrue(r.peerText.contains("no heartbeat ever received from rank(s) 5"), r.peerText)
    }

    func testOtherRanksNameRankZero() {
        let own = RankActivity(collectives: 4, phase: .collective, step: 1, operation: "barrier #4", seconds: 30)
        let waiting = StallReport(rank: 2, size: 3, own: own, collective: 4, peers: [peer(0, 4, .collective)], silentAfter: 3)
        XCTAssertEqual(waiting.peerText, "; rank 0 waits in it too")
        let silent = StallReport(rank: 2, size: 3, own: own, collective: 4, peers: [peer(0, 4, .collective, heardAgo: 9)],
                                 silentAfter: 3)
        XCTAssertEqual(silent.silent, [0])
        XCTAssertTrue(silent.peerText.hasPrefix("; silent: rank 0 on node0 (no heartbeat for 9.0 s"), silent.peerText)
        let alone = StallReport(rank: 0, size: 1, own: own, collective: 4, peers: [], silentAfter: 3)
        XCTAssertEqual(alone.peerText, "")
    }

    func testRankRangesAndLongLists() {
        XCTAssertEqual(StallReport.ranges([9, 1, 3, 4, 5, 6, 7]), "1, 3-7, 9")
        XCTAssertEqual(StallReport.list((1 ... 10).map(String.init)), "1, 2, 3, 4, 5, 6, 7, 8 and 2 more")
    }
}

final class LauncherTimeoutsTests: XCTestCase {
    let twoNodes = ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_MCA_orte_num_nodes": "2"]

    func testOpenMPIDefaultsAndOverrides() {
        XCTAssertEqual(LauncherTimeouts.openMPILostNodeDetection(environment: twoNodes)?.seconds, 480)
        var tuned = twoNodes
        tuned["OMPI_MCA_oob_tcp_keepalive_time"] = "5"
        tuned["OMPI_MCA_oob_tcp_keepalive_intvl"] = "5"
        tuned["OMPI_MCA_oob_tcp_keepalive_probes"] = "5"
        XCTAssertEqual(LauncherTimeouts.openMPILostNodeDetection(environment: tuned)?.seconds, 30)
        XCTAssertNil(LauncherTimeouts.openMPILostNodeDetection(environment: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_MCA_orte_num_nodes": "1"]),
                     "one node: no partition possible")
        XCTAssertNil(LauncherTimeouts.openMPILostNodeDetection(environment: [:]))
    }

    func testWarnsOnlyWhenTheTimeoutWouldFireFirst() {
        XCTAssertNil(LauncherTimeouts.partitionWarning(collectiveTimeout: 600, environment: twoNodes))
        XCTAssertNil(LauncherTimeouts.partitionWarning(collectiveTimeout: 0, environment: twoNodes))
        let warning = LauncherTimeouts.partitionWarning(collectiveTimeout: 300, environment: twoNodes) ?? ""
        XCTAssertTrue(warning.contains("--collective-timeout 300 s is not longer than") && warning.contains("= 480 s"), warning)
    }
}
