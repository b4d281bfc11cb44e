// The collective watchdog's core: what the training thread is doing (a stack of marked activities: collectives,
// and regions such as a checkpoint write that contain collectives), and the policy a second thread applies to it
// (warn after `stallWarning` seconds, again every `stallWarning` seconds, end the rank after `collectiveTimeout`).
// A blocked MPI call cannot be interrupted and MPI is initialised FUNNELED, so the watchdog never calls MPI: it
// only reads this state, talks to the other ranks' watchdogs over PeerBeacon's UDP side channel, prints, records
// and, at the timeout, exits the process, which makes the launcher end the job as for any dead rank.
// Time comes from a WatchdogClock so that the tests can run the policy on a fake clock.
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seconds on a monotonic clock (for ages) and on the wall clock (for records).
public protocol WatchdogClock: Sendable {
    func now() -> Double
    func wallNow() -> Double
}

public struct SystemWatchdogClock: WatchdogClock {
    public init() {}
    public func now() -> Double { Self.read(CLOCK_MONOTONIC) }
    public func wallNow() -> Double { Self.read(CLOCK_REALTIME) }
    private static func read(_ id: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(id, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}

public struct WatchdogSettings: Sendable, Equatable {
    /// Seconds an activity may last before this rank warns (and again every as many seconds); 0 disables warnings.
    public var stallWarning: Double
    /// Seconds after which this rank ends itself, and with it the job; 0 disables.
    public var collectiveTimeout: Double
    /// Seconds between the watchdog's checks and heartbeats: a tenth of the shorter limit, at most 1 s.
    public var tick: Double
    /// Exit status of a rank that timed out (75, EX_TEMPFAIL: the job can be resumed once the cause is gone).
    public var exitCode: Int32 = 75
    /// Appended to the timeout message: what the user should do (which option to raise, how to resume).
    public var timeoutAdvice = ""

    public init(stallWarning: Double = 60, collectiveTimeout: Double = 600, tick: Double? = nil) {
        self.stallWarning = stallWarning
        self.collectiveTimeout = collectiveTimeout
        let limits = [stallWarning, collectiveTimeout].filter { $0 > 0 }
        self.tick = tick ?? min(1, max(0.05, (limits.min() ?? 10) / 10))
    }

    public var isEnabled: Bool { stallWarning > 0 || collectiveTimeout > 0 }

    /// Why these values cannot work, naming the option, or nil. Shared by the trainer's and comm-check's flags.
    public static func problem(stallWarning: Double, collectiveTimeout: Double) -> (option: String, message: String)? {
        if !stallWarning.isFinite || stallWarning < 0 {
            return ("--stall-warning", "must be a number of seconds >= 0 (0 disables the warnings), got \(stallWarning)")
        }
        if !collectiveTimeout.isFinite || collectiveTimeout < 0 {
            return ("--collective-timeout", "must be a number of seconds >= 0 (0 disables it), got \(collectiveTimeout)")
        }
        if stallWarning > 0 && collectiveTimeout > 0 && stallWarning >= collectiveTimeout {
            return ("--stall-warning", "\(stallWarning) s must be shorter than --collective-timeout "
                + "(\(collectiveTimeout) s), or the job ends before anyone is warned; lower one or raise the other")
        }
        return nil
    }
}

/// What a marked activity is. Collectives are numbered per rank: every rank makes the same collectives in the
/// same order, so two ranks' counts say whether one has reached the call the other waits in.
public enum WatchedOperation: Sendable, Equatable, CustomStringConvertible {
    case allReduceAverage(floats: Int)
    case allReduce(ReduceOp, doubles: Int)
    case broadcast(bytes: Int, root: Int)
    case barrier
    /// A stretch of work with collectives inside, e.g. "checkpoint of step 100".
    case region(String)

    public var isCollective: Bool {
        if case .region = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .allReduceAverage(let n): return "all-reduce (average of \(n) floats)"
        case .allReduce(let op, let n): return "all-reduce (\(op) of \(n) doubles)"
        case .broadcast(let bytes, let root): return "broadcast (\(bytes) bytes from rank \(root))"
        case .barrier: return "barrier"
        case .region(let name): return name
        }
    }
}

/// One marked activity on the training thread's stack.
struct Activity: Sendable {
    var operation: WatchedOperation
    /// The step the training loop was at when it began (nil before the first step).
    var step: Int?
    /// For collectives: this call's number on this rank (1-based).
    var collective: Int?
    var started: Double
    /// Warnings printed about it so far (only the outermost activity is judged).
    var warnings = 0
    var stallRecorded = false
    /// What the last warning said about the other ranks, for the record of the stall's end.
    var lastReport: StallReport?
}

/// Where the watchdog writes. Every closure may be called from the watchdog thread.
public struct WatchdogOutput: Sendable {
    public var warn: @Sendable (String) -> Void
    public var error: @Sendable (String) -> Void
    /// Ends the process (after the error was printed and recorded). Tests pass one that returns.
    public var terminate: @Sendable (Int32) -> Void

    public init(warn: @escaping @Sendable (String) -> Void, error: @escaping @Sendable (String) -> Void,
                terminate: @escaping @Sendable (Int32) -> Void) {
        self.warn = warn; self.error = error; self.terminate = terminate
    }

    /// "[rank r] warning: ..." and "[rank r] error: ..." on stderr (one write each, so lines of threads and
    /// processes do not interleave), and _exit: no atexit handlers or stdio flushing that could wait on a lock the
    /// blocked training thread holds.
    public static func standardError(rank: Int) -> WatchdogOutput {
        WatchdogOutput(warn: { writeToStandardError("[rank \(rank)] warning: \($0)\n") },
                       error: { writeToStandardError("[rank \(rank)] error: \($0)\n") },
                       terminate: { _exit($0) })
    }
}

/// One rank's watchdog: the training thread marks (`markStep`, `begin`/`end`, `watch`), the watchdog thread polls.
public final class Watchdog: Sendable {
    public let rank: Int
    public let size: Int
    public let settings: WatchdogSettings
    public let clock: any WatchdogClock
    let output: WatchdogOutput

    struct State {
        var stack: [Activity] = []
        var step: Int?
        var collectives = 0
        /// When the stack last became empty (the start of the current computation).
        var idleSince: Double
        var lastPoll: Double?
        var terminated = false
    }
    let state: Mutex<State>
    let records = RecordQueue()
    private let exiting = Atomic<Bool>(false)
    /// Seconds the timeout exit waits at most for its error line and record (a hung file system must not hold it).
    static let exitDeadline = 3.0

    public init(rank: Int, size: Int, settings: WatchdogSettings, output: WatchdogOutput,
                clock: any WatchdogClock = SystemWatchdogClock()) {
        self.rank = rank; self.size = size; self.settings = settings; self.output = output; self.clock = clock
        state = Mutex(State(idleSince: clock.now()))
    }

    /// Where stall records go (the run's metrics.jsonl); set once the run log exists. Called in order on a
    /// thread of its own (RecordQueue), never with the watchdog's state locked.
    public func setRecorder(_ recorder: (@Sendable (StallRecord) -> Void)?) {
        records.setRecorder(recorder)
    }

    /// Waits until the records so far were handed to the recorder (at most `seconds`); false if time ran out.
    @discardableResult
    public func flushRecords(seconds: Double = 2) -> Bool { records.flush(seconds: seconds) }

    // MARK: marks, from the training thread (a lock and a clock read each)

    /// The step the following activities belong to.
    public func markStep(_ step: Int) {
        state.withLock { $0.step = step }
    }

    public func begin(_ operation: WatchedOperation) {
        let now = clock.now()
        state.withLock { s in
            var activity = Activity(operation: operation, step: s.step, started: now)
            if operation.isCollective {
                s.collectives += 1
                activity.collective = s.collectives
            }
            s.stack.append(activity)
        }
    }

    /// Ends the innermost activity. If it was the outermost and had been reported as stalled, says that it
    /// completed and records the stall's end (on this, the training, thread).
    public func end() {
        let now = clock.now()
        let stalled = state.withLock { s -> Activity? in
            guard let finished = s.stack.popLast() else { return nil }
            if s.stack.isEmpty { s.idleSince = now }
            return s.stack.isEmpty && finished.warnings > 0 && !s.terminated ? finished : nil
        }
        guard let stalled else { return }
        let seconds = now - stalled.started
        output.warn("\(Self.name([stalled])) at \(Self.stepText(stalled.step)) completed after "
            + "\(format(seconds)) s stalled; the run continues")
        records.post(record(.recovered, stalled, seconds: seconds, now: now, peers: stalled.lastReport))
    }

    /// Runs body as an activity.
    public func watch<T>(_ operation: WatchedOperation, _ body: () throws -> T) rethrows -> T {
        begin(operation)
        defer { end() }
        return try body()
    }

    // MARK: the policy, from the watchdog thread

    /// This rank's activity as a heartbeat tells it to the other ranks.
    public func currentActivity() -> RankActivity {
        let now = clock.now()
        return state.withLock { s in Self.activity(of: s, now: now) }
    }

    static func activity(of s: State, now: Double) -> RankActivity {
        guard let outer = s.stack.first, let inner = s.stack.last else {
            return RankActivity(collectives: s.collectives, phase: .computing, step: s.step, operation: "",
                                seconds: now - s.idleSince)
        }
        return RankActivity(collectives: s.collectives, phase: inner.operation.isCollective ? .collective : .region,
                            step: outer.step, operation: name(s.stack), seconds: now - outer.started)
    }

    /// What a poll decided, done after the state is unlocked: printing and recording may block (a full pipe, a
    /// hung file system) and must hold up neither the training thread nor the exit.
    private enum Effect {
        case warn(String)
        case record(StallRecord)
        case fatal(String, StallRecord)
    }

    /// Judges the outermost activity: warns when due, and past the timeout prints the error, records it and
    /// terminates. `peers` is what the side channel knows about the other ranks (empty without one).
    public func poll(peers: [PeerStatus] = []) {
        let now = clock.now()
        let effects = state.withLock { s -> [Effect] in
            guard !s.terminated else { return [] }
            var effects: [Effect] = []
            if let last = s.lastPoll, now - last > max(5, 10 * settings.tick) {
                // This process did not run (SIGSTOP, Slurm's suspend, a debugger): that time is nobody's stall.
                let gap = now - last - settings.tick
                for i in s.stack.indices { s.stack[i].started += gap }
                s.idleSince += gap
                effects.append(.warn("this process did not run for \(format(gap)) s (stopped by a signal or a "
                    + "debugger, or the host was suspended); that time does not count towards the stall limits"))
            }
            s.lastPoll = now
            guard var outer = s.stack.first else { return effects }
            let age = now - outer.started
            let report = StallReport(rank: rank, size: size, own: Self.activity(of: s, now: now),
                                     collective: s.stack.last?.collective, peers: peers,
                                     silentAfter: max(3, 3 * settings.tick))
            let what = "\(Self.name(s.stack)) at \(Self.stepText(outer.step))"
            if settings.collectiveTimeout > 0 && age >= settings.collectiveTimeout {
                s.terminated = true
                let advice = settings.timeoutAdvice.isEmpty ? "" : ". " + settings.timeoutAdvice
                effects.append(.fatal("\(what) has not completed after \(format(age)) s (timeout "
                    + "\(format(settings.collectiveTimeout)) s)" + report.peerText + "; ending this rank (exit "
                    + "\(settings.exitCode)) so that the launcher ends the job instead of letting it hold its nodes"
                    + advice, record(.timedOut, outer, seconds: age, now: now, peers: report)))
                return effects
            }
            guard settings.stallWarning > 0, age >= settings.stallWarning * Double(outer.warnings + 1) else {
                return effects
            }
            outer.warnings = Int(age / settings.stallWarning)
            outer.lastReport = report
            let limit = settings.collectiveTimeout > 0
                ? "; this rank ends the job if it is still waiting at \(format(settings.collectiveTimeout)) s" : ""
            effects.append(.warn("stalled for \(format(age)) s in \(what)" + report.peerText + limit))
            if !outer.stallRecorded {
                outer.stallRecorded = true
                effects.append(.record(record(.started, outer, seconds: age, now: now, peers: report)))
            }
            s.stack[0] = outer
            return effects
        }
        for effect in effects {
            switch effect {
            case .warn(let text): output.warn(text)
            case .record(let r): records.post(r)
            case .fatal(let text, let r):
                // The exit happens by the deadline even if printing or recording hangs.
                runDetached { [self] in
                    usleep(UInt32(Self.exitDeadline * 1e6))
                    exitOnce()
                }
                output.error(text)
                records.post(r)
                records.flush(seconds: Self.exitDeadline - 1)
                exitOnce()
            }
        }
    }

    private func exitOnce() {
        if !exiting.exchange(true, ordering: .acquiringAndReleasing) { output.terminate(settings.exitCode) }
    }

    func record(_ event: StallRecord.Event, _ activity: Activity, seconds: Double, now: Double,
                peers: StallReport?) -> StallRecord {
        StallRecord(event: event, rank: rank, operation: activity.operation.description, step: activity.step,
                    collective: activity.collective, startUnix: clock.wallNow() - (now - activity.started),
                    seconds: seconds, notJoined: peers?.notJoined ?? [], silent: peers?.silent ?? [])
    }

    /// "all-reduce (sum of 3 doubles) #12", or for a region with a collective inside
    /// "checkpoint of step 100 (in barrier #57)". stack: outermost first, not empty.
    static func name(_ stack: [Activity]) -> String {
        func one(_ a: Activity) -> String { a.operation.description + (a.collective.map { " #\($0)" } ?? "") }
        var text = one(stack[0])
        if stack.count > 1 { text += " (in \(one(stack[stack.count - 1])))" }
        return text
    }

    static func stepText(_ step: Int?) -> String { step.map { "step \($0)" } ?? "start-up (before the first step)" }
}

/// Seconds with one decimal below 10 s, whole seconds above.
func format(_ seconds: Double) -> String {
    seconds < 10 ? "\((seconds * 10).rounded() / 10)" : "\(Int(seconds.rounded()))"
}
