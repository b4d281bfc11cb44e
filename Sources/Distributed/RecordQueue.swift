// Hands stall records to their recorder (RunLog, i.e. metrics.jsonl) on a thread of their own, in order, so that
// neither the watchdog thread nor its timeout exit ever waits on a file: metrics.jsonl may sit on the very file
// system whose hang stalled the checkpoint write the watchdog is timing. Also the detached-thread helper the
// watchdog uses for its exit deadline.
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class RecordQueue: Sendable {
    private struct Pending {
        var records: [StallRecord] = []
        var draining = false
        var recorder: (@Sendable (StallRecord) -> Void)?
    }
    private let pending = Mutex(Pending())

    func setRecorder(_ recorder: (@Sendable (StallRecord) -> Void)?) {
        pending.withLock { $0.recorder = recorder }
    }

    /// Queues the record; one drainer thread at a time writes the queue out in order.
    func post(_ record: StallRecord) {
        let start = pending.withLock { p -> Bool in
            guard p.recorder != nil else { return false }
            p.records.append(record)
            if p.draining { return false }
            p.draining = true
            return true
        }
        if start && !runDetached({ self.drain() }) { drain() }
    }

    private func drain() {
        while let (record, recorder) = pending.withLock({ p -> (StallRecord, @Sendable (StallRecord) -> Void)? in
            guard !p.records.isEmpty, let recorder = p.recorder else {
                p.draining = false
                return nil
            }
            return (p.records.removeFirst(), recorder)
        }) {
            recorder(record)
        }
    }

    /// Waits until every queued record was handed over, at most `seconds`; false if time ran out.
    @discardableResult
    func flush(seconds: Double) -> Bool {
        var waited = 0.0
        while pending.withLock({ $0.draining }) {
            if waited >= seconds { return false }
            usleep(5_000)
            waited += 0.005
        }
        return true
    }
}

/// Runs body on a new detached thread; false if no thread could be started.
@discardableResult
func runDetached(_ body: @escaping @Sendable () -> Void) -> Bool {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    guard pthread_create(&thread, nil, { argument in
        Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().run()
        return nil
    }, box) == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        return false
    }
    pthread_detach(thread)
    return true
}

final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
