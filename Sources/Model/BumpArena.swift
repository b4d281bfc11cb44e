// Activation and workspace memory for one batch shape. A stack (bump) allocator: every step takes the same sequence
// of requests, so after the first step at a batch shape it never allocates again.
//
// The stack lives in one large reservation of virtual address space (MAP_NORESERVE: no memory is committed), so
// it never has to move or grow: a page becomes resident the first time a step writes it, and the process's
// resident memory is exactly the deepest the stack has been. Nothing is zero-filled (takeZeroed does that for the
// requests that need it). The reservation is sized to the process's address-space limit (`ulimit -v`, common on
// clusters) and shrinks until the kernel grants it; where none can be made, or a step goes deeper than it,
// requests fall back to separately allocated blocks and the arena regrows to its peak once. Memory that cannot be
// had at all ends the program with a message saying how much was asked for and what the limit is, never a crash.
import Foundation
import Kernels

public final class BumpArena: @unchecked Sendable {
    // @unchecked: used by one thread at a time (the training step); it owns its memory.
    private let reservation: UnsafeMutableRawPointer?   // the mmap reservation, if one was granted
    private let reservedBytes: Int
    private var block: UnsafeMutableRawPointer?          // the fallback block (no reservation, or regrown)
    private var limit: Int                               // floats available at `base`
    private var overflow: [UnsafeMutableRawPointer] = []   // live requests that did not fit this cycle
    private var overflowCounts: [Int] = []
    private var retired: [UnsafeMutableRawPointer] = []    // released overflow blocks, freed at the next reset
    private var top = 0
    private var overflowFloats = 0
    /// Largest number of floats live at once (the depth the stack has reached).
    public private(set) var peak = 0
    /// Times the fallback block was reallocated (never, while the reservation holds).
    public private(set) var growCount = 0

    /// Address space reserved per arena where nothing limits it: far more than any batch this program trains
    /// needs, and free until used.
    public static let defaultReservationBytes = 1 << 36  // 64 GiB
    /// The smallest reservation worth making; below it the arena uses plain blocks.
    static let minimumReservationBytes = 1 << 26          // 64 MiB

    public init(reservationBytes: Int = BumpArena.defaultReservationBytes) {
        // Under an address-space limit, take at most an eighth of what is still free: a process holds several
        // arenas (training and sampling) besides its weights and OpenBLAS's buffers.
        var size = reservationBytes
        if let limit = MemoryLimits.addressSpaceBytes { size = min(size, max(0, limit - MemoryFootprint.virtualBytes) / 8) }
        var granted: UnsafeMutableRawPointer?
        while size >= Self.minimumReservationBytes {
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            if let p, p != MAP_FAILED {
                // Transparent huge pages where the system allows them on request: fewer TLB misses over the
                // activations a step streams through. Advice only; failure changes nothing.
                _ = madvise(p, size, 14 /* MADV_HUGEPAGE */)
                granted = p
                break
            }
            size /= 2
        }
        reservation = granted
        reservedBytes = granted == nil ? 0 : size
        limit = reservedBytes / 4
    }

    deinit {
        if let reservation { munmap(reservation, reservedBytes) }
        block?.deallocate()
        for p in overflow + retired { p.deallocate() }
    }

    private var base: UnsafeMutablePointer<Float>? {
        (reservation ?? block)?.assumingMemoryBound(to: Float.self)
    }

    /// Floats live right now.
    public var used: Int { top + overflowFloats }

    /// Floats of resident memory this arena holds (for memory reports): the stack's deepest point.
    public var capacity: Int { reservation != nil ? max(peak, top) : limit + overflowFloats }

    /// Starts a new cycle. A cycle that overflowed regrows the fallback block to its peak (freeing the old memory
    /// first so the two never coexist); a reservation never moves.
    public func reset() {
        for p in overflow + retired { p.deallocate() }
        let overflowed = !overflow.isEmpty || !retired.isEmpty
        overflow.removeAll(); overflowCounts.removeAll(); retired.removeAll()
        if reservation == nil && (overflowed || peak > limit) {
            block?.deallocate()
            block = nil
            block = Self.allocate(floats: max(peak, 16))
            limit = peak
            growCount += 1
        }
        top = 0; overflowFloats = 0
    }

    /// `count` floats, 64-byte aligned, uninitialised.
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let rounded = (count + 15) & ~15
        peak = max(peak, top + overflowFloats + rounded)
        if let base, top + rounded <= limit {
            defer { top += rounded }
            return base + top
        }
        let extra = Self.allocate(floats: max(rounded, 16))
        overflow.append(extra); overflowCounts.append(rounded)
        overflowFloats += rounded
        return extra.assumingMemoryBound(to: Float.self)
    }

    /// `count` floats set to zero (gradient accumulators: every backward adds).
    public func takeZeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = take(count)
        p.update(repeating: 0, count: count)
        return p
    }

    public struct Mark { fileprivate let top: Int; fileprivate let overflowCount: Int }
    public func mark() -> Mark { Mark(top: top, overflowCount: overflow.count) }
    /// Frees everything taken since `mark` (temporaries of one layer).
    public func release(to mark: Mark) {
        top = mark.top
        if overflow.count > mark.overflowCount {
            // Pointers must stay valid until reset, so the blocks are retired, not freed.
            retired.append(contentsOf: overflow[mark.overflowCount...])
            overflowFloats -= overflowCounts[mark.overflowCount...].reduce(0, +)
            overflow.removeSubrange(mark.overflowCount...)
            overflowCounts.removeSubrange(mark.overflowCount...)
        }
    }

    /// A 64-byte aligned block of `floats` floats, or the end of the program with a clear message.
    static func allocate(floats: Int) -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        let bytes = floats * 4
        guard posix_memalign(&p, 64, bytes) == 0, let p else {
            MemoryLimits.exitOutOfMemory(requestedBytes: bytes, what: "activations of one step")
        }
        return p
    }
}

/// The process's memory limits, for sizing reservations and for saying why an allocation failed.
public enum MemoryLimits {
    /// RLIMIT_AS (`ulimit -v`), or nil when unlimited.
    public static var addressSpaceBytes: Int? { MemoryFootprint.addressSpaceLimit }

    /// Physical memory of this machine.
    public static var physicalBytes: Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Ends the program (exit 71, EX_OSERR) with a message naming the request and the limits, instead of the
    /// crash a failed allocation would otherwise be.
    public static func exitOutOfMemory(requestedBytes: Int, what: String) -> Never {
        let mb = { (b: Int) in String(format: "%.1f MB", Double(b) / 1_048_576) }
        let limit = addressSpaceBytes.map { "the address-space limit (ulimit -v) is \(mb($0))" } ?? "no address-space limit is set"
        Console.error("error: out of memory: could not allocate \(mb(requestedBytes)) for the \(what); "
            + "\(limit), physical memory \(mb(physicalBytes)). Lower --batch-size, or raise the limit.\n")
        exit(71)
    }
}
