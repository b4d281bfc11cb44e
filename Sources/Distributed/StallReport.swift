// What a stalled rank can say about the others, and what it records: a rank's activity as its heartbeat carries
// it, the other ranks' last heartbeats (PeerBeacon), the comparison that names who has not joined the collective
// this rank waits in, and the stall record written to metrics.jsonl.
//
// Who is named: rank 0 hears every rank, so its reports name the ranks that have not reached the collective (and
// what they are doing instead) and the ranks that have gone silent; other ranks hear only rank 0 and name it.
// Silence cannot tell a stopped process from an unreachable host, so the text says both.

/// A rank's activity at one moment.
public struct RankActivity: Sendable, Equatable {
    public enum Phase: String, Sendable {
        case computing, collective, region
    }
    /// Collectives this rank has entered so far (the current one included).
    public var collectives: Int
    public var phase: Phase
    public var step: Int?
    /// The marked activity ("" while computing).
    public var operation: String
    /// Seconds in the current phase.
    public var seconds: Double

    public init(collectives: Int, phase: Phase, step: Int?, operation: String, seconds: Double) {
        self.collectives = collectives; self.phase = phase; self.step = step
        self.operation = operation; self.seconds = seconds
    }

    var summary: String {
        let at = step.map { " at step \($0)" } ?? ""
        switch phase {
        case .computing: return "computing\(at) for \(format(seconds)) s"
        case .collective: return "waiting in \(operation)\(at) for \(format(seconds)) s"
        case .region: return "in \(operation)\(at) for \(format(seconds)) s"
        }
    }
}

/// The last heartbeat heard from another rank.
public struct PeerStatus: Sendable, Equatable {
    public var rank: Int
    public var host: String
    public var pid: Int
    public var activity: RankActivity
    /// Seconds since that heartbeat arrived.
    public var heardAgo: Double

    public init(rank: Int, host: String, pid: Int, activity: RankActivity, heardAgo: Double) {
        self.rank = rank; self.host = host; self.pid = pid; self.activity = activity; self.heardAgo = heardAgo
    }
}

/// The comparison behind a stall message.
struct StallReport: Sendable {
    /// Ranks known to be behind (alive, not yet at the collective), and ranks not heard from lately.
    var notJoined: [Int] = []
    var silent: [Int] = []
    /// "; not joined: ..." (empty when there is nothing to say).
    var peerText = ""

    /// own: this rank's activity; collective: the number of the collective it waits in (nil in a region without
    /// one). Rank 0 judges every rank; other ranks judge rank 0 only.
    init(rank: Int, size: Int, own: RankActivity, collective: Int?, peers: [PeerStatus], silentAfter: Double) {
        guard size > 1 else { return }
        let expected = rank == 0 ? Array(1 ..< size) : [0]
        let heard = Dictionary(peers.map { ($0.rank, $0) }, uniquingKeysWith: { a, _ in a })
        var behind: [String] = [], quiet: [String] = [], neverHeard: [Int] = [], joined = 0
        for r in expected {
            guard let p = heard[r] else { neverHeard.append(r); continue }
            let who = "rank \(r) on \(p.host)"
            var now = p.activity
            now.seconds += p.heardAgo  // the heartbeat told the time in that phase when it was sent
            if p.heardAgo > silentAfter {
                silent.append(r)
                quiet.append("\(who) (no heartbeat for \(format(p.heardAgo)) s: stopped or hung, or \(p.host) unreachable)")
            } else if let k = collective, now.collectives < k {
                // A rank that has left collective k keeps the count k, so only a smaller count is behind.
                notJoined.append(r)
                behind.append("\(who) (\(now.summary))")
            } else if collective != nil {
                joined += 1
            } else {
                behind.append("\(who) is \(now.summary)")  // no collective to compare: say what it is doing
            }
        }
        var parts: [String] = []
        // A silent rank may be stopped before the collective or cut off inside it: it is named, not judged.
        if !quiet.isEmpty { parts.append("silent: " + Self.list(quiet)) }
        if !behind.isEmpty { parts.append((collective == nil ? "" : "not joined: ") + Self.list(behind)) }
        if rank == 0 && collective != nil && size > 2 { parts.append("\(joined) of \(size - 1) other ranks joined") }
        if rank != 0 && collective != nil && joined == 1 { parts.append("rank 0 waits in it too") }
        if !neverHeard.isEmpty {
            parts.append("no heartbeat ever received from rank(s) \(Self.ranges(neverHeard)) (UDP side channel "
                + "blocked, or those ranks started without it)")
        }
        peerText = parts.isEmpty ? "" : "; " + parts.joined(separator: "; ")
    }

    /// At most 8 items, then "and N more".
    static func list(_ items: [String]) -> String {
        let shown = items.prefix(8).joined(separator: ", ")
        return items.count > 8 ? shown + " and \(items.count - 8) more" : shown
    }

    /// "1, 3-7, 9".
    static func ranges(_ ranks: [Int]) -> String {
        var parts: [String] = [], i = 0
        let sorted = ranks.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(j > i ? "\(sorted[i])-\(sorted[j])" : "\(sorted[i])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }
}

/// One line of metrics.jsonl about a stall: when it was first reported, when it ended (recovered) or ended the
/// job (timed out). Nested under "stall" so that tools reading step records by their "step" key skip it.
public struct StallRecord: Sendable, Equatable {
    public enum Event: String, Sendable {
        case started, recovered
        case timedOut = "timed_out"
    }
    public var event: Event
    public var rank: Int
    public var operation: String
    public var step: Int?
    public var collective: Int?
    /// Wall-clock start of the stalled activity, Unix seconds.
    public var startUnix: Double
    /// How long it had lasted at this event.
    public var seconds: Double
    public var notJoined: [Int]
    public var silent: [Int]

    /// {"stall": {...}} for RunLog.metric.
    public var metric: [String: Any] {
        var fields: [String: Any] = [
            "event": event.rawValue, "rank": rank, "operation": operation,
            "start_unix": (startUnix * 1000).rounded() / 1000, "seconds": (seconds * 1000).rounded() / 1000,
        ]
        if let step { fields["step"] = step }
        if let collective { fields["collective"] = collective }
        if event != .started { fields["end_unix"] = ((startUnix + seconds) * 1000).rounded() / 1000 }
        if !notJoined.isEmpty { fields["not_joined"] = notJoined }
        if !silent.isEmpty { fields["silent"] = silent }
        return ["stall": fields]
    }
}
