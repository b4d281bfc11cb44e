// Canny edges with OpenCV's exact semantics (cv2.Canny(img, low, high), aperture 3, L2gradient false), following
// modules/imgproc/src/canny.cpp: Sobel with BORDER_REPLICATE, L1 magnitude |dx|+|dy|, thresholds floored to integers,
// non-maximum suppression with the fixed-point tan(22.5 deg) sector test and OpenCV's asymmetric tie rules, then
// hysteresis with 8-connectivity. No pre-blur (OpenCV does none either).
import Randomness
public enum Canny {
    /// The thresholds of the deterministic `canny` hint (the ControlNet Canny demo's defaults).
    public static let defaultLow = 100.0, defaultHigh = 200.0
    /// Random-threshold augmentation ranges (integers, half-open): low in [100, 200), high in [200, 300), drawn
    /// independently, so low < high always. Centred on the 100/200 defaults, as in the Canny ControlNet's training.
    public static let randomLowRange = 100 ..< 200, randomHighRange = 200 ..< 300

    /// (tan 22.5 deg) in Q15, rounded: canny.cpp's TG22.
    static let tg22: Int32 = 13573

    /// image (H, W) uint8 -> edges (H, W) uint8 with 0/255, exactly as cv2.Canny(img, low, high) (L1 gradient, aperture 3)
    public static func edges(_ image: UnsafePointer<UInt8>, height: Int, width: Int, low: Double, high: Double,
                             into out: UnsafeMutablePointer<UInt8>) {
        precondition(low.isFinite && high.isFinite, "Canny thresholds must be finite")
        precondition(height > 0 && width > 0, "Canny needs a non-empty image")
        // OpenCV swaps reversed thresholds, then floors both: a magnitude passes when m > floor(threshold).
        let (lo, hi) = low > high ? (high, low) : (low, high)
        let lowI = Int32(clamping: Int64(lo.rounded(.down))), highI = Int32(clamping: Int64(hi.rounded(.down)))

        let n = height * width
        let dx = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        let dy = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        // Magnitudes and the state map carry a one-pixel frame: magnitude 0 outside the image (not replicated)
        // and state 1 ("never an edge"), which also stops hysteresis at the border.
        let stride = width + 2
        let framed = (height + 2) * stride
        let mag = UnsafeMutablePointer<Int32>.allocate(capacity: framed)
        let state = UnsafeMutablePointer<UInt8>.allocate(capacity: framed)
        defer { dx.deallocate(); dy.deallocate(); mag.deallocate(); state.deallocate() }
        mag.initialize(repeating: 0, count: framed)
        state.initialize(repeating: 1, count: framed)

        Sobel.gradients(image, height: height, width: width, dx: dx, dy: dy)
        for i in 0 ..< height {
            for j in 0 ..< width { mag[(i + 1) * stride + j + 1] = abs(dx[i * width + j]) + abs(dy[i * width + j]) }
        }

        // Non-maximum suppression. State: 0 = weak candidate, 1 = not an edge, 2 = edge (queued for hysteresis).
        var stack: [Int] = []
        for i in 0 ..< height {
            for j in 0 ..< width {
                let p = (i + 1) * stride + j + 1
                let m = mag[p]
                guard m > lowI else { continue }
                let xs = dx[i * width + j], ys = dy[i * width + j]
                let x = abs(xs), y = abs(ys) << 15
                let tg22x = x &* tg22
                let isMax: Bool
                if y < tg22x {
                    // Near-horizontal gradient: compare along the row; ties go to the left neighbour's favour.
                    isMax = m > mag[p - 1] && m >= mag[p + 1]
                } else if y > tg22x + (x << 16) {
                    // Near-vertical gradient (tan 67.5 = 2 + tan 22.5): compare along the column.
                    isMax = m > mag[p - stride] && m >= mag[p + stride]
                } else {
                    // Diagonal: same-sign derivatives point down-right in image coordinates.
                    let s = (xs ^ ys) < 0 ? -1 : 1
                    isMax = m > mag[p - stride - s] && m > mag[p + stride + s]
                }
                guard isMax else { continue }
                if m > highI {
                    state[p] = 2
                    stack.append(p)
                } else {
                    state[p] = 0
                }
            }
        }

        // Hysteresis: grow every strong pixel through 8-connected weak candidates.
        let neighbours = [-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1]
        while let p = stack.popLast() {
            for d in neighbours where state[p + d] == 0 {
                state[p + d] = 2
                stack.append(p + d)
            }
        }
        for i in 0 ..< height {
            for j in 0 ..< width { out[i * width + j] = state[(i + 1) * stride + j + 1] == 2 ? 255 : 0 }
        }
    }

    /// The augmentation thresholds for sample `index` under `seed`: a pure function of both, so every rank and
    /// every resumed run draws the same pair.
    public static func randomThresholds(seed: UInt64, index: Int) -> (low: Double, high: Double) {
        var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(bitPattern: Int64(index)), 0xCA77_1E5E))
        let low = randomLowRange.lowerBound + Int(rng.next(below: UInt64(randomLowRange.count)))
        let high = randomHighRange.lowerBound + Int(rng.next(below: UInt64(randomHighRange.count)))
        return (Double(low), Double(high))
    }
}
