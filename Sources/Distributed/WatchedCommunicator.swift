// A Communicator decorator that marks every collective for the Watchdog (operation, number, step), and the thread
// that runs the watchdog beside the training thread: each tick it sends and reads heartbeats over the PeerBeacon
// and applies the policy. Code that runs collectives needs no change; code that knows more (the training loop's
// step, a checkpoint write) says so with `markStep` and `watched`, which do nothing on an unwatched communicator.
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class WatchedCommunicator: Communicator, @unchecked Sendable {
    // @unchecked: the stored references are immutable; the collectives themselves keep the base's threading rule.
    public let base: any Communicator
    public let watchdog: Watchdog
    let beacon: PeerBeacon?
    let thread: WatchdogThread

    /// Collective on a multi-rank base (the side channel's set-up is one broadcast): every rank must create it at
    /// the same point. Starts the watchdog thread.
    public init(_ base: any Communicator, settings: WatchdogSettings, output: WatchdogOutput? = nil,
                clock: any WatchdogClock = SystemWatchdogClock()) throws {
        let output = output ?? .standardError(rank: base.rank)
        self.base = base
        watchdog = Watchdog(rank: base.rank, size: base.size, settings: settings, output: output, clock: clock)
        if base.size > 1 {
            let (beacon, problem) = try PeerBeacon.start(over: base, clock: clock)
            if let problem { output.warn(problem) }
            self.beacon = beacon
        } else {
            beacon = nil
        }
        thread = WatchdogThread(watchdog: watchdog, beacon: beacon)
    }

    public var rank: Int { base.rank }
    public var size: Int { base.size }
    public var backendName: String { base.backendName }

    public func allReduceAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try watchdog.watch(.allReduceAverage(floats: count)) { try base.allReduceAverage(buffer, count: count) }
    }

    public func allReduce(_ values: inout [Double], op: ReduceOp) throws {
        watchdog.begin(.allReduce(op, doubles: values.count))
        defer { watchdog.end() }
        try base.allReduce(&values, op: op)
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {
        try watchdog.watch(.broadcast(bytes: byteCount, root: root)) {
            try base.broadcast(buffer, byteCount: byteCount, root: root)
        }
    }

    public func barrier() throws {
        try watchdog.watch(.barrier) { try base.barrier() }
    }

    public func abort(code: Int32, message: String) -> Never {
        base.abort(code: code, message: message)
    }

    /// Stops the watchdog (so that nothing judges the shutdown), lets its last records out, then stops the base.
    public func finalize() {
        thread.stop()
        watchdog.flushRecords(seconds: 2)
        beacon?.stop()
        base.finalize()
    }

    deinit { thread.stop() }
}

extension Communicator {
    /// The watchdog of a WatchedCommunicator, nil for any other communicator.
    public var attachedWatchdog: Watchdog? { (self as? WatchedCommunicator).map { $0.watchdog } }

    /// Tells the watchdog which step the following collectives belong to (no-op without one).
    public func markStep(_ step: Int) { attachedWatchdog?.markStep(step) }

    /// Runs body as a named activity the watchdog times, e.g. "checkpoint of step 100": a rank stuck inside it
    /// (a hung file system) is reported and timed out like a stalled collective. A plain call without a watchdog.
    public func watched<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard let watchdog = attachedWatchdog else { return try body() }
        return try watchdog.watch(.region(name), body)
    }
}

/// The watchdog's own thread: a POSIX thread (joinable, no Foundation) that wakes every tick, or at once when
/// stopped (a byte on a pipe).
final class WatchdogThread: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let handle = Mutex<pthread_t?>(nil)
    private let wake: (read: Int32, write: Int32)

    init(watchdog: Watchdog, beacon: PeerBeacon?) {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        wake = (fds[0], fds[1])
        // The thread holds self until stop() has joined it.
        let body: @Sendable () -> Void = { [self] in
            let tick = watchdog.settings.tick
            while !stopping.load(ordering: .acquiring) {
                if let beacon {
                    beacon.exchange(watchdog.currentActivity(), seconds: tick, wake: wake.read)
                } else {
                    Self.sleep(tick, wake: wake.read)
                }
                if stopping.load(ordering: .acquiring) { return }
                watchdog.poll(peers: beacon?.peers() ?? [])
            }
        }
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        if pthread_create(&thread, nil, { argument in
            Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, box) == 0 {
            handle.withLock { $0 = thread }
        } else {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            writeToStandardError("[rank \(watchdog.rank)] warning: could not start the watchdog thread "
                + "(\(String(cString: strerror(errno)))); stalls will not be reported or timed out\n")
        }
    }

    /// Waits for the thread to finish its tick; safe to call more than once.
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        if let thread = handle.withLock({ $0 }) { pthread_join(thread, nil) }
        _ = close(wake.read)
        _ = close(wake.write)
    }

    /// Sleeps for `seconds` unless a byte arrives on `wake`.
    static func sleep(_ seconds: Double, wake: Int32) {
        var pfd = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, Int32((seconds * 1000).rounded(.up)))
    }
}
