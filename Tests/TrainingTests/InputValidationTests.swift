// Bad input is refused before any work, naming the option, field, tensor or file: non-finite and out-of-range
// option values, unbounded counts, configs with unknown keys or absurd sizes, configs and batches that cannot fit
// in memory, weights holding NaN or Inf, labels a class config cannot take; and a full disk ends the run with a
// message while metrics.jsonl stays line-valid.
import XCTest
import Foundation
import Datasets
import Distributed
import Model
import SafeTensors
import Training

final class InputValidationTests: XCTestCase {
    func testNonFiniteAndOutOfRangeOptionsNameTheOption() {
        func refused(_ edit: (inout TrainOptions) -> Void, _ option: String, line: UInt = #line) {
            var o = TrainOptions(); o.base = "b"
            edit(&o)
            XCTAssertThrowsError(try o.validate(config: .tiny), line: line) {
                XCTAssertEqual(($0 as? OptionsError)?.option, option, "\($0)", line: line)
            }
        }
        refused({ $0.lr = .nan }, "--lr")
        refused({ $0.lr = .infinity }, "--lr")
        refused({ $0.weightDecay = .nan }, "--weight-decay")
        refused({ $0.lr = 1e300 }, "--lr")
        refused({ $0.lr = 10.5 }, "--lr")
        refused({ $0.weightDecay = 1e300 }, "--weight-decay")
        refused({ $0.weightDecay = 101 }, "--weight-decay")
        // Each in bounds, but AdamW's factor 1 - lr x wd would reach 0: the weights would vanish every step.
        refused({ $0.lr = 10; $0.weightDecay = 0.1 }, "--weight-decay")
        refused({ $0.lr = 0.5; $0.weightDecay = 2 }, "--weight-decay")
        refused({ $0.maxGradNorm = .nan }, "--max-grad-norm")
        refused({ $0.minLRFraction = .infinity }, "--min-lr-fraction")
        refused({ $0.epochs = .infinity }, "--epochs")
        refused({ $0.promptDropout = .nan }, "--prompt-dropout")
        refused({ $0.gradAccum = 1_000_000_000 }, "--grad-accum")
        refused({ $0.batchSize = 0 }, "--batch-size")
        refused({ $0.batchSize = 1 << 40 }, "--batch-size")
        refused({ $0.simulateRanks = 100_000 }, "--simulate-ranks")
        refused({ $0.validationCount = 1 << 30 }, "--validation-count")
        refused({ $0.injectNonfinite = ["3:x"] }, "--inject-nonfinite")
        refused({ $0.resume = "latest"; $0.overwrite = true }, "--overwrite")
        var ok = TrainOptions(); ok.base = "b"
        XCTAssertNoThrow(try ok.validate(config: .tiny))
        var edge = ok; edge.lr = 10; edge.weightDecay = 0.09   // lr x wd = 0.9: legal, if odd
        XCTAssertNoThrow(try edge.validate(config: .tiny))
        // A non-finite value never crashes the JSON the options are recorded as.
        ok.weightDecay = .nan
        XCTAssertTrue(ok.jsonDescription.contains("\"weight_decay\" : \"nan\""), ok.jsonDescription)
    }

    func testConfigsWithUnknownKeysOrAbsurdSizesAreRefusedNamingTheField() {
        func refused(_ json: String, _ field: String, line: UInt = #line) {
            XCTAssertThrowsError(try ModelConfig.decode(json: Data(json.utf8), source: "c.json"), line: line) {
                XCTAssertEqual(($0 as? ConfigError)?.field, field, "\($0)", line: line)
            }
        }
        let tiny = ModelConfig.tiny.json
        refused(tiny.replacingOccurrences(of: "{", with: "{\"dropout\": 0.5, "), "dropout")
        refused(tiny.replacingOccurrences(of: "\"num_res_blocks\":1", with: "\"num_res_blocks\":1000000000"), "num_res_blocks")
        refused(tiny.replacingOccurrences(of: "\"model_channels\":8", with: "\"model_channels\":1048576"), "model_channels")
        refused(tiny.replacingOccurrences(of: "\"image_size\":8", with: "\"image_size\":65536"), "image_size")
        refused(tiny.replacingOccurrences(of: "\"num_classes\":0", with: "\"num_classes\":1000000000000"), "num_classes")
        refused("[1, 2]", "config")
        XCTAssertNoThrow(try ModelConfig.decode(json: Data(tiny.utf8), source: "c.json"))
    }

    func testConfigsWithDuplicateKeysAreRefusedNamingTheKeyAndFile() {
        let tiny = ModelConfig.tiny.json
        // The same key twice, the second value different: parsers would silently keep one.
        let twice = tiny.replacingOccurrences(of: "{", with: "{\"model_channels\": 64, ")
        XCTAssertThrowsError(try ModelConfig.decode(json: Data(twice.utf8), source: "dup.json")) {
            XCTAssertEqual(($0 as? ConfigError)?.field, "model_channels", "\($0)")
            XCTAssertTrue("\($0)".contains("dup.json") && "\($0)".contains("more than once"), "\($0)")
        }
        // Escapes spell the same key; strings that merely contain a key, and keys of nested objects, are not keys.
        XCTAssertEqual(JSONDuplicateKeys.first(in: Data(#"{"a": 1, "\u0061": 2}"#.utf8)), "a")
        XCTAssertNil(JSONDuplicateKeys.first(in: Data(#"{"a": "a", "b": ["a", {"a": 1}], "c": {"a": {"a": 2}}}"#.utf8)))
        XCTAssertEqual(JSONDuplicateKeys.first(in: Data(#"{"x": [{"k": 1, "k\"": 2, "k": 3}]}"#.utf8)), "k")
        XCTAssertEqual(JSONDuplicateKeys.first(in: Data(#"{"s": "\\", "s": 1}"#.utf8)), "s")
        XCTAssertNil(JSONDuplicateKeys.first(in: Data(tiny.utf8)))
    }

    func testConfigsAndBatchesThatCannotFitAreRefusedBeforeAllocating() throws {
        var big = ModelConfig.mnist
        big.imageSize = 32; big.modelChannels = 4096; big.channelMult = [1, 2, 4, 8]; big.normGroups = 32; big.numHeads = 32
        try big.validate()
        assertRefused(try MemoryPlan.check(config: big, configName: "big.json", mode: .controlnet, samples: 1),
                      ["--config", "big.json", "parameters"])
        assertRefused(try MemoryPlan.check(config: .mnist, configName: "mnist", mode: .controlnet, samples: 60_000),
                      ["--batch-size", "60000 samples per step", "--grad-accum"])
        XCTAssertNoThrow(try MemoryPlan.check(config: .mnist, configName: "mnist", mode: .controlnet, samples: 64))
    }

    func testGenerationCountsAndBatchesThatCannotFitAreRefusedWithTheBytes() throws {
        // 10^8 mnist samples are 314 GB of images: refused naming --count and the bytes, before any allocation.
        assertRefused(try MemoryPlan.checkGeneration(config: .mnist, count: 100_000_000, batchSize: 16, workers: 2,
                                                     imageSets: 1, available: 8e9), ["--count", "bytes", "8.00 GB"])
        assertRefused(try MemoryPlan.checkGeneration(config: .mnist, count: Int.max, batchSize: 16, workers: 1,
                                                     imageSets: 1, available: 8e9), ["--count"])
        // 64 samples fit, but 65536 per pass on 4 threads need terabytes of activations.
        assertRefused(try MemoryPlan.checkGeneration(config: .mnist, count: 1_000_000, batchSize: 65_536, workers: 4,
                                                     imageSets: 3, available: 64e9), ["--batch-size", "--threads"])
        // The batch a pass takes is at most the count: a huge --batch-size for 2 samples is harmless.
        XCTAssertNoThrow(try MemoryPlan.checkGeneration(config: .mnist, count: 2, batchSize: 65_536, workers: 2,
                                                        imageSets: 1, available: 1e9))
        XCTAssertNoThrow(try MemoryPlan.checkGeneration(config: .mnist, count: 256, batchSize: 16, workers: 2,
                                                        imageSets: 3, available: 1e9))
    }

    func testToolCountsAndDurationsAreBounded() {
        func refused(_ body: @autoclosure () throws -> Void, _ option: String, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) {
                XCTAssertEqual(($0 as? OptionsError)?.option, option, "\($0)", line: line)
            }
        }
        refused(try OptionBounds.count("--steps", 1_000_000_000, OptionBounds.benchSteps), "--steps")
        refused(try OptionBounds.count("--warmup", -1, OptionBounds.benchWarmup), "--warmup")
        refused(try OptionBounds.count("--batch-size", Int.max, OptionBounds.batchSize), "--batch-size")
        refused(try OptionBounds.count("--repeats", 1_000_000_000, OptionBounds.sgemmRepeats), "--repeats")
        refused(try OptionBounds.count("--batch", 100_000_000, OptionBounds.sgemmBatch), "--batch")
        refused(try OptionBounds.count("--count", 100_000_000_000, OptionBounds.commCount), "--count")
        refused(try OptionBounds.count("--repeats", 1_000_000_000_000, OptionBounds.commRepeats), "--repeats")
        for bad in [Double.nan, .infinity, -.infinity, -1, 1e300] {
            refused(try OptionBounds.number("--loop-seconds", bad, OptionBounds.seconds), "--loop-seconds")
        }
        refused(try OptionBounds.number("--tolerance", .nan, 0...Double.greatestFiniteMagnitude), "--tolerance")
        XCTAssertThrowsError(try OptionBounds.number("--loop-seconds", .nan, OptionBounds.seconds)) {
            XCTAssertTrue("\($0)".contains("finite"), "\($0)")
        }
        XCTAssertNoThrow(try OptionBounds.number("--loop-seconds", 2, OptionBounds.seconds))
        XCTAssertNoThrow(try OptionBounds.count("--steps", 7, OptionBounds.benchSteps))
    }

    func testWeightsWithANaNAreRefusedNamingTheTensor() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        // Poison one weight of the base file.
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: base))
        let unet = UNet(config: .tiny), params = FloatBuffer(count: unet.parameterCount)
        try WeightFile.load(file, table: unet.table, into: params.pointer, expecting: .tiny)
        let victim = try XCTUnwrap(unet.table.entry("middle.0.conv1.weight"))
        params.pointer[victim.offset + 5] = .nan
        let poisoned = ws.path("poisoned.safetensors")
        try WeightFile.save(kind: .unet, table: unet.table, params: params.pointer, config: .tiny, to: URL(fileURLWithPath: poisoned))
        let o = ws.options(data: data, base: poisoned, out: "nan-base", steps: 2)
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--base", poisoned, "middle.0.conv1.weight", "non-finite", "element 5"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: ws.path("nan-base")), "nothing is written for a refused run")
        assertRefused(try Generator.load(base: poisoned, controls: []), ["middle.0.conv1.weight", "non-finite"])
    }

    func testLabelsAClassConfigCannotTakeAreRefused() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset()     // labels 0...9
        var o = ws.options(data: data, base: nil, out: "cls", steps: 1, mode: .base)
        o.config = "tiny-class"              // 3 classes
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--data", "label", "num_classes 3"])
        // An IDX images file with no labels beside it.
        let idx = ws.path("img-images-idx3-ubyte")
        try Data(IDX.encodeImages([UInt8](repeating: 9, count: 40 * 64), count: 40, height: 8, width: 8)).write(to: URL(fileURLWithPath: idx))
        o.data = idx
        assertRefused(try Trainer(options: o, comm: LocalCommunicator()), ["--data", "no labels", "class-conditional"])
    }

    func testAFullDiskEndsTheRunAndLeavesMetricsLineValid() throws {
        let ws = try Workspace()
        let data = try ws.writeDataset(), base = try ws.writeBase()
        var o = ws.options(data: data, base: base, out: "full", steps: 200)
        let t = try Trainer(options: o, comm: LocalCommunicator())
        // A file-size limit makes writes past 3000 bytes fail (EFBIG) as a full disk would.
        signal(SIGXFSZ, SIG_IGN)
        var old = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        var small = old; small.rlim_cur = 3000
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &small)
        defer { setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old) }
        assertRefused(try t.run(), ["metrics.jsonl", "cannot append a metrics record"])
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        let text = try String(contentsOfFile: ws.path("full/metrics.jsonl"), encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"))
        for line in text.split(separator: "\n") {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), "torn line: \(line)")
        }
        XCTAssertEqual(RunStatus.read(from: ws.root.appendingPathComponent("full"))?.state, .failed)
        o.out = ws.path("unused")
    }
}
