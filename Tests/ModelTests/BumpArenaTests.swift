// The activation arena with and without its address-space reservation: the fallback path (used under
// `ulimit -v` or strict overcommit) hands out the same memory semantics, regrows to its peak once, and frees each
// block exactly once (it used to free the fallback block twice).
import XCTest
import Model

final class BumpArenaTests: XCTestCase {
    private func exercise(_ arena: BumpArena) {
        for cycle in 0..<4 {
            arena.reset()
            let a = arena.takeZeroed(1000), m = arena.mark()
            let b = arena.take(5000)
            for i in 0..<5000 { b[i] = Float(i) }
            arena.release(to: m)
            let c = arena.take(3000 + cycle)
            for i in 0..<1000 { XCTAssertEqual(a[i], 0) }
            c[2999] = 1
            XCTAssertEqual(Int(bitPattern: a) % 64, 0, "64-byte aligned")
            XCTAssertEqual(Int(bitPattern: c) % 64, 0, "64-byte aligned")
        }
    }

    func testWithoutAReservationTheArenaFallsBackAndFreesOnce() {
        // A reservation below the minimum is not made: every request goes through the fallback blocks.
        var arena: BumpArena? = BumpArena(reservationBytes: 1 << 20)
        exercise(arena!)
        XCTAssertLessThanOrEqual(arena!.growCount, 2, "the fallback block regrows to its peak, then stays")
        XCTAssertEqual(arena!.peak, ((1000 + 15) & ~15) + ((5000 + 15) & ~15), "the deepest point: a and b live together")
        arena = nil   // deinit: a double free would abort here (and under ASan, say so)
    }

    func testWithAReservationNothingIsReallocated() {
        let arena = BumpArena(reservationBytes: 1 << 28)
        exercise(arena)
        XCTAssertEqual(arena.growCount, 0)
        XCTAssertEqual(arena.capacity, arena.peak)
    }

    func testMemoryLimitsAreReadable() {
        XCTAssertGreaterThan(MemoryLimits.physicalBytes, 1 << 20)
        if let limit = MemoryLimits.addressSpaceBytes { XCTAssertGreaterThan(limit, 0) }
    }
}
