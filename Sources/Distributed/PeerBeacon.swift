// The watchdog's side channel: a UDP socket per rank, outside MPI. Every tick each rank sends rank 0 a heartbeat
// (its activity: phase, collective count, step, operation), and rank 0 answers each rank it hears with its own.
// So rank 0 knows which ranks have not reached the collective it waits in, and every rank knows whether rank 0
// is alive, while the training thread sits in a blocking MPI call that nothing else may touch (MPI is FUNNELED).
//
// Why UDP and not MPI: a second thread in MPI would need MPI_THREAD_MULTIPLE and its traffic would queue behind
// the stalled collective's; files need a shared directory. Why a star: it is O(ranks) datagrams per tick, not
// O(ranks^2). Heartbeats are best effort: a lost or blocked datagram only leaves a report less precise (the report
// says when a rank was never heard). The set-up is one broadcast of rank 0's addresses over MPI, made by every
// rank at start-up; IPv4 only (on an IPv6-only network the side channel stays silent and says so).
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class PeerBeacon: Sendable {
    /// An IPv4 address and port, both in network byte order.
    struct Address: Sendable, Hashable {
        var ip: UInt32
        var port: UInt16
    }
    struct Heard: Sendable {
        var status: PeerStatus
        var at: Double
        var address: Address
    }

    public let rank: Int
    public let size: Int
    let fd: Int32
    let token: UInt64
    let host: String
    let targets: [Address]  // rank 0's addresses (other ranks); empty on rank 0, which answers whom it hears
    let clock: any WatchdogClock
    let heard = Mutex<[Int: Heard]>([:])
    let closed = Atomic<Bool>(false)
    static let magic = "cnwd1"
    static let blobBytes = 1024

    init(rank: Int, size: Int, fd: Int32, token: UInt64, host: String, targets: [Address], clock: any WatchdogClock) {
        self.rank = rank; self.size = size; self.fd = fd; self.token = token; self.host = host
        self.targets = targets; self.clock = clock
    }

    deinit { stop() }

    /// Closes the socket; later exchanges do nothing.
    public func stop() {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { _ = close(fd) }
    }

    /// Collective (every rank must call it): each rank opens its socket and rank 0 broadcasts its addresses, port,
    /// host name and a job token. Returns nil with the reason when this rank runs without a side channel.
    public static func start(over comm: any Communicator, clock: any WatchdogClock = SystemWatchdogClock())
        throws -> (beacon: PeerBeacon?, problem: String?) {
        let host = hostName()
        let opened = openSocket()
        var blob = [UInt8](repeating: 0, count: blobBytes)
        if comm.rank == 0 {
            var text = "none"
            if case .success(let (_, port)) = opened {
                let token = UInt64.random(in: 1 ... UInt64.max)
                let ips = localIPv4Addresses().prefix(16).map(ipText)
                text = "\(magic) \(String(token, radix: 16)) \(port) \(host) " + ips.joined(separator: " ")
            }
            let bytes = Array(text.utf8.prefix(blobBytes - 1))
            blob.replaceSubrange(0 ..< bytes.count, with: bytes)
        }
        try blob.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, byteCount: blobBytes, root: 0) }
        let fields = String(decoding: blob.prefix { $0 != 0 }, as: UTF8.self).split(separator: " ").map(String.init)
        let fd: Int32
        switch opened {
        case .failure(let reason):
            return (nil, "no UDP socket for the watchdog's side channel (\(reason)); this rank reports only its own state")
        case .success(let (socket, _)):
            fd = socket
        }
        guard fields.count >= 4, fields[0] == magic, let token = UInt64(fields[1], radix: 16),
              let port = UInt16(fields[2]) else {
            _ = close(fd)
            return (nil, "rank 0 has no UDP side channel; each rank reports only its own state")
        }
        var targets: [Address] = []
        if comm.rank != 0 {
            // Rank 0's loopback address is ours too only on rank 0's host.
            for text in fields.dropFirst(4) {
                guard let ip = ipValue(text) else { continue }
                if UInt32(bigEndian: ip) >> 24 == 127 && fields[3] != host { continue }
                targets.append(Address(ip: ip, port: port.bigEndian))
            }
            if targets.isEmpty {
                _ = close(fd)
                return (nil, "rank 0 on \(fields[3]) has no IPv4 address this rank can send to; each rank reports only its own state")
            }
        }
        return (PeerBeacon(rank: comm.rank, size: comm.size, fd: fd, token: token, host: host, targets: targets,
                           clock: clock), nil)
    }

    // MARK: one tick

    /// Sends this rank's heartbeat (rank 0: to every rank it has heard; others: to rank 0), then reads heartbeats
    /// until `seconds` have passed or `wake` (a descriptor, -1 for none) becomes readable.
    public func exchange(_ own: RankActivity, seconds: Double, wake: Int32 = -1) {
        guard !closed.load(ordering: .acquiring) else { return }
        let message = Array(encode(own).utf8)
        let destinations = rank == 0 ? heard.withLock { $0.values.map(\.address) } : targets
        for address in destinations { send(message, to: address) }
        let deadline = clock.now() + seconds
        while true {
            let left = deadline - clock.now()
            if left <= 0 { return }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, wake >= 0 ? 2 : 1, Int32(max(1, (left * 1000).rounded(.up))))
            if ready < 0 && errno != EINTR { return }
            if ready > 0 && fds[1].revents != 0 { return }
            if ready > 0 && fds[0].revents != 0 { receiveAll(reply: rank == 0 ? message : nil) }
        }
    }

    /// The heartbeats heard, with their age now.
    public func peers() -> [PeerStatus] {
        let now = clock.now()
        return heard.withLock { heard in
            heard.values.map { h in
                var status = h.status
                status.heardAgo = now - h.at
                return status
            }.sorted { $0.rank < $1.rank }
        }
    }

    // MARK: wire format

    /// "cnwd1 TOKEN RANK PID COLLECTIVES PHASE STEP|- MILLISECONDS HOST OPERATION..." (the operation may hold spaces).
    func encode(_ a: RankActivity) -> String {
        let step = a.step.map(String.init) ?? "-"
        let text = "\(Self.magic) \(String(token, radix: 16)) \(rank) \(getpid()) \(a.collectives) \(a.phase.rawValue) "
            + "\(step) \(Int((a.seconds * 1000).rounded())) \(host) \(a.operation)"
        return String(decoding: text.utf8.prefix(1200), as: UTF8.self)
    }

    /// The status a heartbeat carries, or nil for anything that is not a heartbeat of this job.
    func decode(_ text: String) -> PeerStatus? {
        let f = text.split(separator: " ", maxSplits: 9, omittingEmptySubsequences: false).map(String.init)
        guard f.count >= 9, f[0] == Self.magic, UInt64(f[1], radix: 16) == token,
              let r = Int(f[2]), r >= 0, r < size, r != rank, let pid = Int(f[3]), let collectives = Int(f[4]),
              let phase = RankActivity.Phase(rawValue: f[5]), let ms = Int(f[7]) else { return nil }
        let activity = RankActivity(collectives: collectives, phase: phase, step: Int(f[6]),
                                    operation: f.count > 9 ? f[9] : "", seconds: Double(ms) / 1000)
        return PeerStatus(rank: r, host: f[8], pid: pid, activity: activity, heardAgo: 0)
    }

    /// Reads every queued heartbeat. Rank 0 (`reply`: its own heartbeat) answers a rank the first time it hears
    /// it, at once: otherwise the first answer waits for rank 0's next tick, and a link cut within a tick of the
    /// start leaves that rank never having heard rank 0.
    private func receiveAll(reply: [UInt8]? = nil) {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            if n <= 0 { return }
            guard let status = decode(String(decoding: buffer.prefix(n), as: UTF8.self)) else { continue }
            let entry = Heard(status: status, at: clock.now(),
                              address: Address(ip: from.sin_addr.s_addr, port: from.sin_port))
            let first = heard.withLock { heard in
                defer { heard[status.rank] = entry }
                return heard[status.rank] == nil
            }
            if first, let reply { send(reply, to: entry.address) }
        }
    }

    private func send(_ message: [UInt8], to address: Address) {
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = address.port
        to.sin_addr = in_addr(s_addr: address.ip)
        _ = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0,
                           socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    // MARK: sockets and addresses

    /// A UDP socket on every interface, on a port the kernel picks: (descriptor, port) or the reason.
    static func openSocket() -> Result<(Int32, UInt16), SocketProblem> {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SocketProblem("socket: \(String(cString: strerror(errno)))")) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: INADDR_ANY)
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            _ = close(fd)
            return .failure(SocketProblem("bind: \(reason)"))
        }
        return .success((fd, UInt16(bigEndian: address.sin_port)))
    }

    struct SocketProblem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// This host's IPv4 addresses on interfaces that are up, loopback last (network byte order).
    static func localIPv4Addresses() -> [UInt32] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var outside: [UInt32] = [], loopback: [UInt32] = []
        var item = list
        while let entry = item {
            defer { item = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                  entry.pointee.ifa_flags & UInt32(IFF_UP) != 0 else { continue }
            let ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            if entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK) != 0 { loopback.append(ip) } else { outside.append(ip) }
        }
        return outside + loopback
    }

    static func ipText(_ ip: UInt32) -> String {
        let h = UInt32(bigEndian: ip)
        return "\(h >> 24).\(h >> 16 & 255).\(h >> 8 & 255).\(h & 255)"
    }

    static func ipValue(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ $0 < 256 }) else { return nil }
        return (parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]).bigEndian
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "?" }
        let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.isEmpty ? "?" : text.split(separator: " ").joined(separator: "_")
    }
}
