// Shared test fixtures: seeded random buffers, and the central finite-difference gradient check.
import XCTest
import Randomness
import Kernels

/// SplitMix64: deterministic across runs and platforms, so failures reproduce.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A manually allocated Float buffer: stable pointers that closures can capture without exclusivity trouble.
final class Buf {
    let count: Int
    let p: UnsafeMutablePointer<Float>

    init(_ count: Int, fill: Float = 0) {
        self.count = count
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: fill, count: max(count, 1))
    }

    convenience init(random count: Int, _ rng: inout SeededRandom, scale: Float = 1, offset: Float = 0) {
        self.init(count)
        for i in 0..<count { p[i] = offset + scale * Float.random(in: -1...1, using: &rng) }
    }

    convenience init(_ values: [Float]) {
        self.init(values.count)
        for i in values.indices { p[i] = values[i] }
    }

    deinit { p.deallocate() }

    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
    var cp: UnsafePointer<Float> { UnsafePointer(p) }
    func copy() -> Buf { Buf(array) }
    func zero() { p.update(repeating: 0, count: count) }
    func scaled(_ f: Float) -> [Float] { array.map { $0 * f } }
}

/// sum_i a[i] b[i] in Double: the scalar loss sum(y * r) whose gradient w.r.t. y is r.
func dot(_ a: Buf, _ b: Buf) -> Double {
    precondition(a.count == b.count)
    var s = 0.0
    for i in 0..<a.count { s += Double(a.p[i]) * Double(b.p[i]) }
    return s
}

/// Compares `analytic` (the kernel's gradient of loss w.r.t. param) with central differences
/// (loss(p + h) - loss(p - h)) / (2h), h = eps, on every element (or `maxChecks` seeded picks of a big buffer).
/// The step actually taken (after Float rounding) is used as the denominator. Tolerance:
/// |analytic - numeric| <= 1e-2 * max|numeric| + 1e-5 + rtol |numeric|: a wrong gradient (wrong index, factor,
/// sign or missing term) is off by O(max|numeric|) and fails; Float round-off in the loss stays far below.
func checkGradient(_ label: String, param: Buf, analytic: Buf, eps: Float = 1e-2, rtol: Float = 2e-2,
                   maxChecks: Int = 48, file: StaticString = #filePath, line: UInt = #line,
                   loss: () -> Double) {
    XCTAssertEqual(param.count, analytic.count, "\(label): gradient buffer size", file: file, line: line)
    var indices = Array(0..<param.count)
    if indices.count > maxChecks {
        var rng = SeededRandom(UInt64(param.count) &* 7919)
        indices.shuffle(using: &rng)
        indices = Array(indices.prefix(maxChecks))
    }
    var numeric = [Float](), analyticPicked = [Float]()
    for i in indices {
        let saved = param.p[i]
        param.p[i] = saved + eps
        let up = Double(param.p[i])
        let lp = loss()
        param.p[i] = saved - eps
        let down = Double(param.p[i])
        let lm = loss()
        param.p[i] = saved
        numeric.append(Float((lp - lm) / (up - down)))
        analyticPicked.append(analytic.p[i])
    }
    let scale = numeric.map { abs($0) }.max() ?? 0
    XCTAssertGreaterThan(scale, 0, "\(label): numeric gradient is identically zero, the check would be vacuous",
                         file: file, line: line)
    assertClose(analyticPicked, numeric, rtol: rtol, atol: 1e-2 * scale + 1e-5, "\(label) vs finite differences",
                file: file, line: line)
}
