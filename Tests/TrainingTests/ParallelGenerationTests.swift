// Generation on several threads and ranks, and its inference path: the same images as one thread, bit for bit; the
// inference forward equal to the training forward; classifier-free guidance in one pass of 2N equal to two passes
// of N; ControlNets not run outside the guidance window or at scale 0. Tiny configs, a few DDIM steps.
import XCTest
import Distributed
import Kernels
import Model
import Randomness
import Training

/// Rank `rank` of `size` for code that only gathers: the gather leaves the other ranks' slices as they were, so
/// a test can run each rank's share in turn and assemble the whole itself.
final class ShareOnlyCommunicator: Communicator, @unchecked Sendable {
    let rank: Int, size: Int
    init(rank: Int, size: Int) { self.rank = rank; self.size = size }
    var backendName: String { "share-only" }
    func allReduceAverage(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    func allReduce(_ values: inout [Double], op: ReduceOp) throws {}
    func allGather(_ buffer: UnsafeMutablePointer<Float>, count: Int, slice: (Int) -> Range<Int>) throws {}
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {}
    func barrier() throws {}
    func abort(code: Int32, message: String) -> Never { fatalError(message) }
    func finalize() {}
}

final class ParallelGenerationTests: XCTestCase {
    /// A base and a "trained" ControlNet (seeded non-zero zero convs), hints and labels for `count` samples.
    struct Setup {
        let config: ModelConfig
        let base: FloatBuffer, control: FloatBuffer
        let hints: [Float], labels: [Int]?
        func generator(scale: Float = 1, controls: Int = 1) -> Generator {
            Generator(config: config, base: base, controls: (0..<controls).map { _ in .init(params: control, scale: scale) })
        }
    }

    func setup(_ config: ModelConfig = .tiny, count: Int) -> Setup {
        let unet = UNet(config: config), net = ControlNet(config: config)
        let base = FloatBuffer(count: unet.parameterCount), control = FloatBuffer(count: net.parameterCount)
        Initializers.initialize(unet.table, base.pointer, seed: 1)
        Initializers.initialize(net.table, control.pointer, seed: 2)
        var rng = RandomStream(seed: 5)
        let S = config.imageSize
        let hints = (0..<(count * config.hintChannels * S * S)).map { _ in rng.uniform() > 0.7 ? Float(1) : 0 }
        let labels = config.numClasses > 0 ? (0..<count).map { $0 % (config.numClasses + 1) } : nil
        return Setup(config: config, base: base, control: control, hints: hints, labels: labels)
    }

    func settings(batch: Int, threads: Int, steps: Int = 4) -> GenerationSettings {
        var s = GenerationSettings()
        s.sampler = SamplerSettings(kind: .ddim, steps: steps, seed: 7)
        s.batchSize = batch; s.threads = threads
        return s
    }

    func testThreadsAndRanksGiveTheOneThreadImagesBitForBit() throws {
        let n = 11, f = setup(count: n)
        let one = f.generator().generate(count: n, hints: f.hints, labels: nil, settings: settings(batch: 3, threads: 1))
        XCTAssertTrue(one.allSatisfy(\.isFinite))
        for threads in [2, 3, 5] {
            let many = f.generator().generate(count: n, hints: f.hints, labels: nil, settings: settings(batch: 3, threads: threads))
            XCTAssertEqual(one.map(\.bitPattern), many.map(\.bitPattern), "\(threads) threads changed the samples")
        }
        // Ranks: each computes its share; together they tile the set and give the same bits.
        let per = f.config.inChannels * f.config.imageSize * f.config.imageSize
        for ranks in [2, 3, 4, 6] {
            var assembled = [Float](repeating: .nan, count: n * per)
            var covered = 0
            for r in 0..<ranks {
                let comm = ShareOnlyCommunicator(rank: r, size: ranks)
                let mine = try f.generator().generate(count: n, hints: f.hints, labels: nil,
                                                      settings: settings(batch: 3, threads: 2), comm: comm)
                let share = GenerationPlan.share(count: n, batchSize: 3, rank: r, ranks: ranks)
                XCTAssertEqual(share.lowerBound, covered, "rank \(r) of \(ranks): shares must be contiguous")
                covered = share.upperBound
                for i in (share.lowerBound * per)..<(share.upperBound * per) { assembled[i] = mine[i] }
            }
            XCTAssertEqual(covered, n)
            XCTAssertEqual(one.map(\.bitPattern), assembled.map(\.bitPattern), "\(ranks) ranks changed the samples")
        }
    }

    func testPassesDependOnlyOnCountAndBatch() {
        XCTAssertEqual(GenerationPlan.passes(count: 200, batchSize: 64), [0..<50, 50..<100, 100..<150, 150..<200])
        XCTAssertEqual(GenerationPlan.passes(count: 10, batchSize: 4), [0..<3, 3..<6, 6..<10])
        XCTAssertEqual(GenerationPlan.passes(count: 0, batchSize: 4), [])
        for (count, batch) in [(1, 1), (7, 16), (129, 16), (64, 64)] {
            let all = GenerationPlan.passes(count: count, batchSize: batch)
            XCTAssertEqual(all.first?.lowerBound, 0); XCTAssertEqual(all.last?.upperBound, count)
            XCTAssertTrue(all.allSatisfy { $0.count <= batch && $0.count >= batch / 2 || all.count == 1 })
            for ranks in 1...5 {
                let joined = (0..<ranks).flatMap { GenerationPlan.passes(count: count, batchSize: batch, rank: $0, ranks: ranks) }
                XCTAssertEqual(joined, all, "ranks take the same passes, in order")
            }
        }
    }

    /// The inference forward (nothing kept, concatenations in turns, cached Winograd weights) is the training
    /// forward's arithmetic call for call: the same bits, for the ControlNet pair and for a trainable base, in
    /// either precision (bf16's compact activations keep copies; its cached weights are the rounded ones').
    func testInferenceForwardIsTheTrainingForwardBitForBit() {
        for precision in Precision.allCases {
            checkInferenceForwardIsTheTrainingForward(precision)
        }
    }

    func checkInferenceForwardIsTheTrainingForward(_ p: Precision) {
        for config in [ModelConfig.tiny, .tinyClass] {
            let n = 3, f = setup(config, count: n), S = config.imageSize
            let unet = UNet(config: config), net = ControlNet(config: config)
            var rng = RandomStream(seed: 9)
            var x = (0..<(n * config.inChannels * S * S)).map { _ in rng.normal() }
            var hints = f.hints
            let t = [5, 500, 999], labels = f.labels
            let grads = FloatBuffer(count: net.parameterCount)
            func run(inference: Bool, trainable: Bool) -> [Float] {
                let arenas = StepArenas()
                let cache = inference ? TransformedWeights() : nil
                let controlWeights = trainable ? WeightSource(params: f.control.pointer, grads: grads.pointer, precision: p)
                                               : WeightSource(params: f.control.pointer, grads: nil, precision: p,
                                                              transformed: cache)
                return x.withUnsafeMutableBufferPointer { xb in
                    hints.withUnsafeMutableBufferPointer { hb in
                        let r = net.forward(controlWeights, x: xb.baseAddress!, hint: hb.baseAddress!, t: t,
                                            labels: labels, arenas: arenas)
                        let out = unet.forward(WeightSource(params: f.base.pointer, grads: nil, precision: p, transformed: cache),
                                               x: xb.baseAddress!, t: t, labels: labels,
                                               controls: [ControlResiduals(residuals: r, scale: 0.7)], arenas: arenas,
                                               inference: inference)
                        return Array(UnsafeBufferPointer(start: out, count: xb.count))
                    }
                }
            }
            let training = run(inference: false, trainable: true)
            XCTAssertEqual(training.map(\.bitPattern), run(inference: true, trainable: false).map(\.bitPattern), "\(config.numClasses) classes \(p)")
            XCTAssertEqual(training.map(\.bitPattern), run(inference: false, trainable: false).map(\.bitPattern), "\(config.numClasses) classes \(p)")
            // Base training's forward: every UNet weight trainable.
            let baseGrads = FloatBuffer(count: unet.parameterCount)
            let arenas = StepArenas()   // alive while the outputs, which live in it, are read
            let full = x.withUnsafeMutableBufferPointer { xb in
                let out = unet.forward(WeightSource(params: f.base.pointer, grads: baseGrads.pointer, precision: p), x: xb.baseAddress!,
                                       t: t, labels: labels, arenas: arenas)
                return Array(UnsafeBufferPointer(start: out, count: xb.count))
            }
            arenas.reset()
            let plain = x.withUnsafeMutableBufferPointer { xb in
                let out = unet.forward(WeightSource(params: f.base.pointer, grads: nil, precision: p,
                                                    transformed: TransformedWeights()),
                                       x: xb.baseAddress!, t: t, labels: labels, arenas: arenas, inference: true)
                return Array(UnsafeBufferPointer(start: out, count: xb.count))
            }
            XCTAssertEqual(full.map(\.bitPattern), plain.map(\.bitPattern), "\(config.numClasses) classes \(p): base")
        }
    }

    /// One UNet pass over [x; x] with [labels; none] against two passes: the same arithmetic per sample, but the
    /// GEMMs are twice as wide, and OpenBLAS may then pick kernels that round differently (GenerationPlan), so the
    /// images agree to float tolerance, not necessarily in every bit.
    func testGuidanceInOnePassEqualsTwoPasses() {
        let n = 6, f = setup(.tinyClass, count: n)
        for guess in [false, true] {
            var s = settings(batch: 4, threads: 2)
            s.cfgScale = 2.5; s.guessMode = guess
            let one = f.generator().generate(count: n, hints: f.hints, labels: f.labels, settings: s)
            s.batchGuidance = false
            let two = f.generator().generate(count: n, hints: f.hints, labels: f.labels, settings: s)
            XCTAssertTrue(one.allSatisfy(\.isFinite))
            let worst = zip(one, two).map { abs($0 - $1) }.max() ?? .nan
            XCTAssertLessThanOrEqual(worst, 1e-5, "guess mode \(guess): batched guidance differs by \(worst)")
            // And guidance does something: scale 1 (no guidance) gives other images.
            s.cfgScale = 1
            let unguided = f.generator().generate(count: n, hints: f.hints, labels: f.labels, settings: s)
            XCTAssertNotEqual(one, unguided)
        }
    }

    /// A ControlNet whose weights are all NaN poisons every sample it touches; outside the guidance window and at
    /// scale 0 the samples stay finite and are exactly the base model's, so it was never run there.
    func testControlNetNotRunOutsideTheWindowOrAtScaleZero() {
        let n = 4, f = setup(count: n)
        let poisoned = FloatBuffer(count: f.control.count)
        poisoned.pointer.update(repeating: .nan, count: poisoned.count)
        var s = settings(batch: 4, threads: 1, steps: 4)
        let baseAlone = Generator(config: f.config, base: f.base, controls: []).generate(count: n, hints: nil, labels: nil, settings: s)
        let atZero = Generator(config: f.config, base: f.base, controls: [.init(params: poisoned, scale: 0)])
            .generate(count: n, hints: f.hints, labels: nil, settings: s)
        XCTAssertEqual(baseAlone.map(\.bitPattern), atZero.map(\.bitPattern))
        // A window that no step lies in: [0.9, 1] with 4 steps covers none (each step spans a quarter).
        s.guidanceStart = 0.9; s.guidanceEnd = 1
        let outside = Generator(config: f.config, base: f.base, controls: [.init(params: poisoned, scale: 1)])
            .generate(count: n, hints: f.hints, labels: nil, settings: s)
        XCTAssertEqual(baseAlone.map(\.bitPattern), outside.map(\.bitPattern))
        // Inside the window (the last step) it does run, and changes the samples.
        s.guidanceStart = 0.75
        let inside = Generator(config: f.config, base: f.base, controls: [.init(params: poisoned, scale: 1)])
            .generate(count: n, hints: f.hints, labels: nil, settings: s)
        XCTAssertNotEqual(baseAlone.map(\.bitPattern), inside.map(\.bitPattern))
    }
}
