// Activation and workspace memory for one batch shape. A stack (bump) allocator: every step takes the same sequence
// of requests, so after the first step at a batch shape it never allocates again.
//
// The stack lives in one large reservation of virtual address space (MAP_NORESERVE: no memory is committed), so
// it never has to move or grow: a page becomes resident the first time a step writes it, and the process's
// resident memory is exactly the deepest the stack has been. Nothing is zero-filled (takeZeroed does that for the
// requests that need it). Where the reservation cannot be made (strict overcommit accounting) or a step goes
// deeper than it, requests fall back to separately allocated blocks and the arena regrows to its peak once.
import Foundation

public final class BumpArena: @unchecked Sendable {
    // @unchecked: used by one thread at a time (the training step); it owns its memory.
    private var base: UnsafeMutablePointer<Float>
    private var limit: Int                       // floats available at `base`
    private let reservedBytes: Int                // > 0 when `base` is an mmap reservation
    private var fallbackBlock: UnsafeMutableRawPointer?
    private var overflow: [UnsafeMutableRawPointer] = []   // live requests that did not fit this cycle
    private var overflowCounts: [Int] = []
    private var retired: [UnsafeMutableRawPointer] = []    // released overflow blocks, freed at the next reset
    private var top = 0
    private var overflowFloats = 0
    /// Largest number of floats live at once (the depth the stack has reached).
    public private(set) var peak = 0
    /// Times the fallback block was reallocated (never, while the reservation holds).
    public private(set) var growCount = 0

    /// Address space reserved per arena: far more than any batch this program trains needs, and free until used.
    public static let defaultReservationBytes = 1 << 36  // 64 GiB

    public init(reservationBytes: Int = BumpArena.defaultReservationBytes) {
        let p = mmap(nil, reservationBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if let p, p != MAP_FAILED {
            // Transparent huge pages where the system allows them on request: fewer TLB misses over the
            // activations a step streams through. Advice only; failure changes nothing.
            _ = madvise(p, reservationBytes, 14 /* MADV_HUGEPAGE */)
            base = p.assumingMemoryBound(to: Float.self)
            limit = reservationBytes / 4
            reservedBytes = reservationBytes
        } else {
            base = UnsafeMutablePointer<Float>.allocate(capacity: 16)
            limit = 0
            reservedBytes = 0
        }
    }

    deinit {
        if reservedBytes > 0 { munmap(base, reservedBytes) } else { base.deallocate() }
        fallbackBlock?.deallocate()
        for p in overflow + retired { p.deallocate() }
    }

    /// Floats live right now.
    public var used: Int { top + overflowFloats }

    /// Floats of resident memory this arena holds (for memory reports): the stack's deepest point.
    public var capacity: Int { reservedBytes > 0 ? max(peak, top) : limit + overflowFloats }

    /// Starts a new cycle. Without a reservation, a cycle that overflowed regrows the block to its peak, freeing
    /// the old memory first so the two never coexist.
    public func reset() {
        for p in overflow + retired { p.deallocate() }
        let overflowed = !overflow.isEmpty || !retired.isEmpty
        overflow.removeAll(); overflowCounts.removeAll(); retired.removeAll()
        if reservedBytes == 0 && (overflowed || peak > limit) {
            fallbackBlock?.deallocate()
            let raw = UnsafeMutableRawPointer.allocate(byteCount: max(peak, 16) * 4, alignment: 64)
            fallbackBlock = raw
            base = raw.assumingMemoryBound(to: Float.self)
            limit = peak
            growCount += 1
        }
        top = 0; overflowFloats = 0
    }

    /// `count` floats, 64-byte aligned, uninitialised.
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let rounded = (count + 15) & ~15
        peak = max(peak, top + overflowFloats + rounded)
        if top + rounded <= limit {
            defer { top += rounded }
            return base + top
        }
        let extra = UnsafeMutableRawPointer.allocate(byteCount: max(rounded, 16) * 4, alignment: 64)
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
}
