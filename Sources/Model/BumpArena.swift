// Activation and workspace memory for one batch shape. A stack (bump) allocator over one big block: every step
// takes the same sequence of requests, so after the first step at a batch shape it never allocates again.
import Foundation

public final class BumpArena: @unchecked Sendable {
    // @unchecked: used by one thread at a time (the training step); it owns its blocks.
    private var block: FloatBuffer
    private var overflow: [FloatBuffer] = []     // live requests that did not fit this cycle
    private var retired: [FloatBuffer] = []      // released overflow blocks, freed at the next reset
    private var top = 0
    private var overflowFloats = 0
    /// Largest number of floats live at once in the last cycle (the size the block grows to).
    public private(set) var peak = 0
    public private(set) var growCount = 0

    public init(initialCount: Int = 0) { block = FloatBuffer(count: initialCount) }

    /// Floats live right now (for memory reports).
    public var used: Int { top + overflowFloats }

    /// Floats held by this arena (for memory reports).
    public var capacity: Int { block.count + overflow.reduce(0) { $0 + $1.count } }

    /// Starts a new cycle. If the last cycle overflowed, the block is regrown once to its peak.
    public func reset() {
        if !overflow.isEmpty || !retired.isEmpty || peak > block.count {
            block = FloatBuffer(count: peak)
            overflow.removeAll(); retired.removeAll()
            growCount += 1
        }
        top = 0; overflowFloats = 0
    }

    /// `count` floats, 64-byte aligned, uninitialised.
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let rounded = (count + 15) & ~15
        let live = top + overflowFloats + rounded
        peak = max(peak, live)
        if top + rounded <= block.count {
            defer { top += rounded }
            return block.pointer + top
        }
        let extra = FloatBuffer(count: rounded)
        overflow.append(extra)
        overflowFloats += rounded
        return extra.pointer
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
            overflow.removeSubrange(mark.overflowCount...)
            overflowFloats = overflow.reduce(0) { $0 + $1.count }
        }
    }
}
