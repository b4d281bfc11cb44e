// Single-thread decode throughput (images per CPU-second) of the Datasets image pipeline (run by scripts/bench-decode.sh, never by the
// tests): PNG and JPEG at 32x32 and 512x512, photo-like and flat (fill-circles) content, decode alone and decode +
// channels + short-side resize + centre crop as PairedDataset.load does per file.
import Foundation

func photoLike(_ w: Int, _ h: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return (0 ..< w * h * 3).map { k in
        let (x, y, c) = (k / 3 % w, k / 3 / w, k % 3)
        let smooth = 128 + 60 * sin(Double(x) / Double(w) * 6 + Double(c)) * cos(Double(y) / Double(h) * 5)
        return UInt8(max(0, min(255, smooth + Double(rng.next(below: 33)) - 16)))
    }
}

/// This thread's CPU time: on a shared machine wall time would measure the other processes too.
func cpuSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Calls per CPU-second of `body`, over about `seconds` of CPU time.
func timed(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    var n = 0
    let start = cpuSeconds()
    while cpuSeconds() - start < seconds || n < 3 {
        try body()
        n += 1
    }
    return Double(n) / (cpuSeconds() - start)
}

@main
enum DecodeBench {
    static func main() throws {
        print("| image | content | format | file bytes | decode img/s | decode + channels + resize img/s (to S) |")
        print("|---|---|---|---|---|---|")
        for side in [32, 512] {
            let circle = FillCircles.sample(index: 0, size: side, seed: 1)
            for (content, rgb) in [("photo-like", photoLike(side, side, seed: 3)),
                                   ("fill-circles", FillCircles.target(circle, size: side))] {
                let files = [("PNG", try PNG.encode(pixels: rgb, width: side, height: side, channels: 3)),
                             ("JPEG q90", try JPEG.encode(pixels: rgb, width: side, height: side, channels: 3, quality: 90))]
                for (format, bytes) in files {
                    let target = side == 512 ? 64 : 32
                    let decode = try timed(seconds: 2) { _ = try ImageFile.decode(bytes, path: "bench") }
                    let full = try timed(seconds: 2) {
                        let image = try ImageFile.decode(bytes, path: "bench")
                        _ = try image.resizedPlanes(channels: 3, size: target, filter: .bilinear)
                    }
                    print("| \(side)x\(side) | \(content) | \(format) | \(bytes.count) | \(Int(decode)) | \(Int(full)) (\(target)) |")
                }
            }
        }
    }
}
