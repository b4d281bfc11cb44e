// The ControlNet tutorial task, generated: each sample is a circle filled with one colour on a background of
// another, written in the fill50k layout (DIR/prompt.json, DIR/source/i.png, DIR/target/i.png). The source (the
// condition) is the circle's outline, white on black, as in fill50k; the target is the filled image; the prompt is
// "<fill> circle with <background> background".
// Choices:
// - 8 colours, the corners of the RGB cube under their CSS names, so any two differ by 255 in at least one channel
//   and the nearest palette colour of a pixel region is never ambiguous (nearestColor);
// - fill != background: a circle filled with its background colour is invisible, so such a sample would teach
//   the model to ignore the condition. That leaves 8 x 7 = 56 prompts (not the 64 of all ordered pairs);
// - circles are hard-edged (a pixel is inside when its centre is, no antialiasing) so the target holds exactly two
//   colours, and stay inside the image with a margin of max(1, S/16) pixels; the outline is the inner ring of
//   thickness max(1, S/64) pixels;
// - sample i depends only on (seed, i), so a larger count extends a smaller one, and the same seed gives
//   byte-identical files (libpng writes no time stamps).
import Randomness
import Dispatch
import Foundation
import Synchronization

public enum FillCircles {
    public struct Color: Sendable, Equatable {
        public let name: String
        public let r: UInt8, g: UInt8, b: UInt8
    }

    public static let palette: [Color] = [
        Color(name: "black", r: 0, g: 0, b: 0), Color(name: "white", r: 255, g: 255, b: 255),
        Color(name: "red", r: 255, g: 0, b: 0), Color(name: "lime", r: 0, g: 255, b: 0),
        Color(name: "blue", r: 0, g: 0, b: 255), Color(name: "yellow", r: 255, g: 255, b: 0),
        Color(name: "cyan", r: 0, g: 255, b: 255), Color(name: "magenta", r: 255, g: 0, b: 255),
    ]

    /// Smallest image side that leaves room for a circle of radius 2 inside the margin.
    public static let minimumSize = 8

    /// One sample's geometry and colours (indices into `palette`).
    public struct Sample: Sendable, Equatable {
        public let centerX: Int, centerY: Int, radius: Int
        public let fill: Int, background: Int

        public var prompt: String { "\(palette[fill].name) circle with \(palette[background].name) background" }

        /// Inside the filled disc: the pixel's centre is within the radius.
        public func isInside(x: Int, y: Int) -> Bool {
            let dx = x - centerX, dy = y - centerY
            return dx * dx + dy * dy <= radius * radius
        }
    }

    /// Every prompt the generator can produce, in palette order (56).
    public static var allPrompts: [String] {
        palette.indices.flatMap { f in
            palette.indices.filter { $0 != f }.map { Sample(centerX: 0, centerY: 0, radius: 0, fill: f, background: $0).prompt }
        }
    }

    public static func margin(size: Int) -> Int { max(1, size / 16) }
    public static func outlineThickness(size: Int) -> Int { max(1, size / 64) }

    /// Sample `index` of the stream for `seed` at image side `size` (>= minimumSize).
    public static func sample(index: Int, size: Int, seed: UInt64) -> Sample {
        var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(index)))
        let m = margin(size: size)
        // Radii from S/8 to 3S/8 (4...12 pixels at 32): circles large enough that one pixel of boundary is not
        // most of their area, small enough to leave room to move.
        let rMin = max(2, size / 8), rMax = max(rMin, min(3 * size / 8, (size - 1 - 2 * m) / 2))
        let r = rMin + Int(rng.next(below: UInt64(rMax - rMin + 1)))
        let lo = m + r, hi = size - 1 - m - r
        let cx = lo + Int(rng.next(below: UInt64(hi - lo + 1)))
        let cy = lo + Int(rng.next(below: UInt64(hi - lo + 1)))
        let fill = Int(rng.next(below: UInt64(palette.count)))
        let other = Int(rng.next(below: UInt64(palette.count - 1)))
        return Sample(centerX: cx, centerY: cy, radius: r, fill: fill, background: other >= fill ? other + 1 : other)
    }

    /// The target image, (size, size, 3) interleaved RGB.
    public static func target(_ s: Sample, size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0 ..< size {
            for x in 0 ..< size {
                let c = palette[s.isInside(x: x, y: y) ? s.fill : s.background]
                let k = (y * size + x) * 3
                out[k] = c.r; out[k + 1] = c.g; out[k + 2] = c.b
            }
        }
        return out
    }

    /// The condition, (size, size) gray: 255 on the outline (inside pixels within `thickness` of the edge:
    /// (r - t)^2 < d^2 <= r^2), 0 elsewhere.
    public static func source(_ s: Sample, size: Int) -> [UInt8] {
        let t = outlineThickness(size: size)
        let inner = max(0, s.radius - t)
        var out = [UInt8](repeating: 0, count: size * size)
        for y in 0 ..< size {
            for x in 0 ..< size {
                let dx = x - s.centerX, dy = y - s.centerY
                let d2 = dx * dx + dy * dy
                if d2 <= s.radius * s.radius && d2 > inner * inner { out[y * size + x] = 255 }
            }
        }
        return out
    }

    /// Writes `count` samples to `directory` in the fill50k layout; returns the prompts in row order. Images are
    /// written first and prompt.json last (each atomically), so a directory with a prompt.json is complete.
    @discardableResult
    public static func generate(count: Int, size: Int, seed: UInt64, to directory: URL) throws -> [String] {
        guard count > 0 else {
            throw ImageDataError.invalidArgument(name: "count", value: "\(count)", expected: "at least 1")
        }
        guard size >= minimumSize && size <= 4096 else {
            throw ImageDataError.invalidArgument(name: "size", value: "\(size)", expected: "\(minimumSize)...4096")
        }
        let fm = FileManager.default
        for sub in ["source", "target"] {
            do {
                try fm.createDirectory(at: directory.appendingPathComponent(sub), withIntermediateDirectories: true)
            } catch {
                throw DatasetError.cannotWrite(path: directory.appendingPathComponent(sub).path,
                                               reason: error.localizedDescription)
            }
        }
        // The files are independent: write them on every core (each sample depends only on seed and index).
        let chunks = min(count, 8 * max(1, ProcessInfo.processInfo.activeProcessorCount))
        let failures = Mutex<[Int: Error]>([:])
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            for i in (c * count / chunks) ..< ((c + 1) * count / chunks) {
                let s = sample(index: i, size: size, seed: seed)
                do {
                    try PNG.write(gray: source(s, size: size), width: size, height: size,
                                  to: directory.appendingPathComponent("source/\(i).png"))
                    try PNG.write(rgb: target(s, size: size), width: size, height: size,
                                  to: directory.appendingPathComponent("target/\(i).png"))
                } catch {
                    failures.withLock { $0[i] = error }
                    return
                }
            }
        }
        if let first = failures.withLock({ $0.min { $0.key < $1.key } }) { throw first.value }
        var lines = "", prompts: [String] = []
        for i in 0 ..< count {
            let s = sample(index: i, size: size, seed: seed)
            lines += "{\"source\": \"source/\(i).png\", \"target\": \"target/\(i).png\", \"prompt\": \"\(s.prompt)\"}\n"
            prompts.append(s.prompt)
        }
        let manifest = directory.appendingPathComponent("prompt.json")
        try FileOutput.write(Array(lines.utf8), to: manifest)
        return prompts
    }

    /// The palette colour nearest to (r, g, b) in squared RGB distance: the index into `palette`.
    public static func nearestColor(r: Double, g: Double, b: Double) -> Int {
        var best = 0, bestDistance = Double.infinity
        for (i, c) in palette.enumerated() {
            let d = (r - Double(c.r)) * (r - Double(c.r)) + (g - Double(c.g)) * (g - Double(c.g))
                + (b - Double(c.b)) * (b - Double(c.b))
            if d < bestDistance { bestDistance = d; best = i }
        }
        return best
    }
}
