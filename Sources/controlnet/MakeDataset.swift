// `controlnet make-dataset fill-circles`: the ControlNet tutorial's task, generated deterministically in the fill50k
// layout (DIR/prompt.json, DIR/source/i.png, DIR/target/i.png), for training and evaluating on paired data.
import ArgumentParser
import Foundation
import Datasets

struct MakeDataset: ParsableCommand {
    enum Kind: String, ExpressibleByArgument, CaseIterable { case fillCircles = "fill-circles" }

    static let configuration = CommandConfiguration(
        commandName: "make-dataset",
        abstract: "Write a generated paired dataset (fill-circles: circles filled with one colour on another, the ControlNet tutorial's task).")

    @Argument(help: "What to generate: fill-circles.")
    var kind: Kind
    @Option(help: "Samples to write.")
    var count = 1000
    @Option(help: "Image side in pixels.")
    var size = 32
    @Option(help: "Seed: sample i depends only on the seed and i, so the same seed gives the same files.")
    var seed: UInt64 = 0
    @Option(help: "Directory to write (created; it must not hold a dataset already, unless --overwrite).")
    var out: String
    @Flag(help: "Replace a dataset already in --out.")
    var overwrite = false

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be in 1...1000000, got \(count)") }
        guard (FillCircles.minimumSize...1024).contains(size) else {
            throw ValidationError("--size must be in \(FillCircles.minimumSize)...1024, got \(size)")
        }
    }

    func run() throws {
        let url = URL(fileURLWithPath: out)
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ValidationError("--out \(out) exists and is not a directory") }
            let entries = (try? fm.contentsOfDirectory(atPath: url.path)) ?? []
            if !entries.isEmpty {
                guard overwrite else {
                    throw ValidationError("--out \(out) is not empty (\(entries.sorted().prefix(3).joined(separator: ", "))...); choose an empty directory or pass --overwrite")
                }
                for name in ["prompt.json", "source", "target"] { try? fm.removeItem(at: url.appendingPathComponent(name)) }
            }
        }
        let started = Date()
        let prompts = try FillCircles.generate(count: count, size: size, seed: seed, to: url)
        print(String(format: "wrote %d fill-circles samples (%dx%d, seed %llu, %d distinct prompts) to %@ in %.1f s",
                     count, size, size, seed, Set(prompts).count, out, Date().timeIntervalSince(started)))
    }
}
