// Differentiable stand-ins for the hint kinds, for the consistency loss: each maps an image (H, W) on the 0...255
// scale of the uint8 images the hints were computed from to a map (H, W) in the hint's [0, 1] range, with the
// gradient of that map back to the image (forward and backward side by side; both are plain loops, the reference
// is the central finite difference the tests take).
//   canny, canny-random: Canny(100, 200)'s L1 Sobel magnitude |dx| + |dy| (smoothed |g| = sqrt(g^2 + 1),
//                        BORDER_REPLICATE as OpenCV) after its non-maximum suppression (suppressed pixels count as
//                        magnitude 0, without gradient), through a soft threshold sigmoid((m - 150) / 25) between
//                        its two thresholds; compared with the 0/1 edges by binary cross-entropy;
//   sobel:               sqrt(dx^2 + dy^2) / 1020 clipped to 1, as the hint; mean squared error;
//   mask:                sigmoid((x - 127.5) / 8), the soft pixel >= 128; binary cross-entropy;
//   blur:                the 7-tap binomial blur along rows then columns, edges replicated (linear); MSE;
//   tile:                the mean of each 4x4 tile, repeated over it (linear); MSE.
// scribble (a thinned skeleton) has no useful gradient and is refused by name.
import Foundation
import Datasets

public enum ConditionExtractor: Sendable {
    case edges, sobel, mask, blur, tile

    /// The extractor for a hint kind, or nil when the kind has no differentiable form.
    public init?(_ kind: HintKind) {
        switch kind {
        case .canny, .cannyRandom: self = .edges
        case .sobel: self = .sobel
        case .mask: self = .mask
        case .blur: self = .blur
        case .tile: self = .tile
        case .scribble: return nil
        }
    }

    /// Binary cross-entropy for 0/1-like targets (their maps are logits: the loss is taken in its stable
    /// with-logits form); mean squared error for continuous ones.
    var usesCrossEntropy: Bool { self == .edges || self == .mask }

    /// The extracted map of `image` (H, W) on the 0...255 scale. out: (H, W): logits for the cross-entropy kinds
    /// (sigmoid(out) in [0, 1] is the soft hint), values in [0, 1] for the others.
    func forward(_ image: UnsafePointer<Float>, height h: Int, width w: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .edges:
            let (m, kept) = Self.suppressedMagnitude(image, h, w)
            for i in 0..<(h * w) { out[i] = ((kept[i] ? m[i] : 0) - 150) / 25 }
        case .sobel:
            for i in 0..<(h * w) {
                let (gx, gy) = Self.sobel(image, h, w, i / w, i % w)
                out[i] = min((gx * gx + gy * gy).squareRoot() / 1020, 1)
            }
        case .mask:
            for i in 0..<(h * w) { out[i] = (image[i] - 127.5) / 8 }
        case .blur:
            Self.blur(image, h, w, transpose: false, into: out)
        case .tile:
            Self.tile(image, h, w, into: out)
        }
    }

    /// dImage (H, W) += the gradient of sum(dOut * forward(image)).
    func backward(_ image: UnsafePointer<Float>, height h: Int, width w: Int, dOut: UnsafePointer<Float>,
                  dImage: UnsafeMutablePointer<Float>) {
        switch self {
        case .edges, .sobel:
            // Canny's non-maximum suppression is piecewise constant: only the kept pixels carry a gradient.
            let kept = self == .edges ? Self.suppressedMagnitude(image, h, w).kept : []
            for i in 0..<(h * w) {
                let y = i / w, x = i % w
                if self == .edges && !kept[i] { continue }
                let (gx, gy) = Self.sobel(image, h, w, y, x)
                var dgx: Float, dgy: Float
                if self == .edges {
                    let dm = dOut[i] / 25
                    dgx = dm * gx / (gx * gx + 1).squareRoot(); dgy = dm * gy / (gy * gy + 1).squareRoot()
                } else {
                    let r = (gx * gx + gy * gy).squareRoot()
                    guard r / 1020 < 1, r > 0 else { continue }   // clipped, or a flat spot: no gradient
                    dgx = dOut[i] * gx / (r * 1020); dgy = dOut[i] * gy / (r * 1020)
                }
                Self.sobelAdjoint(dgx, dgy, h, w, y, x, into: dImage)
            }
        case .mask:
            for i in 0..<(h * w) { dImage[i] += dOut[i] / 8 }
        case .blur:
            Self.blur(dOut, h, w, transpose: true, into: dImage, accumulate: true)
        case .tile:
            Self.tile(dOut, h, w, into: dImage, accumulate: true)
        }
    }

    /// The smoothed L1 magnitude (H, W) and which pixels Canny's non-maximum suppression keeps: a pixel is kept
    /// when its magnitude is a maximum across the edge, along the gradient direction rounded to 0, 45, 90 or 135
    /// degrees, with OpenCV's tie rules (strict on one side, >= on the other; both strict on diagonals) and zero
    /// magnitude outside the image. Without it the loss would ask for high magnitude on the hint's one-pixel line
    /// and low on its neighbours, which no image's Sobel response can give, and moves the edges off the line.
    static func suppressedMagnitude(_ image: UnsafePointer<Float>, _ h: Int, _ w: Int) -> (m: [Float], kept: [Bool]) {
        // The comparisons use the exact |dx| + |dy| and canny.cpp's Q15 direction test (TG22 = 13573), so ties fall
        // as OpenCV's do; the smoothed magnitude is only the value passed on.
        var m = [Float](repeating: 0, count: h * w), l1 = m, gxs = m, gys = m
        for i in 0..<(h * w) {
            let (gx, gy) = sobel(image, h, w, i / w, i % w)
            gxs[i] = gx; gys[i] = gy
            l1[i] = abs(gx) + abs(gy)
            m[i] = (gx * gx + 1).squareRoot() + (gy * gy + 1).squareRoot()
        }
        func at(_ y: Int, _ x: Int) -> Float { y < 0 || y >= h || x < 0 || x >= w ? 0 : l1[y * w + x] }
        var kept = [Bool](repeating: false, count: h * w)
        for i in 0..<(h * w) {
            let y = i / w, x = i % w, v = l1[i]
            let ax = Double(abs(gxs[i])), ay = Double(abs(gys[i])) * 32768, tg22x = ax * 13573
            if ay < tg22x {
                kept[i] = v > at(y, x - 1) && v >= at(y, x + 1)
            } else if ay > tg22x + ax * 65536 {
                kept[i] = v > at(y - 1, x) && v >= at(y + 1, x)
            } else {
                let s = (gxs[i] < 0) != (gys[i] < 0) ? -1 : 1
                kept[i] = v > at(y - 1, x - s) && v > at(y + 1, x + s)
            }
        }
        return (m, kept)
    }

    /// Sobel derivatives at (y, x) with replicated borders: dx = [-1 0 1] x [1 2 1]^T, dy its transpose.
    @inline(__always)
    static func sobel(_ p: UnsafePointer<Float>, _ h: Int, _ w: Int, _ y: Int, _ x: Int) -> (Float, Float) {
        let u = max(y - 1, 0) * w, m = y * w, d = min(y + 1, h - 1) * w
        let l = max(x - 1, 0), r = min(x + 1, w - 1)
        let gx = (p[u + r] + 2 * p[m + r] + p[d + r]) - (p[u + l] + 2 * p[m + l] + p[d + l])
        let gy = (p[d + l] + 2 * p[d + x] + p[d + r]) - (p[u + l] + 2 * p[u + x] + p[u + r])
        return (gx, gy)
    }

    /// The adjoint of `sobel` at (y, x): spreads dgx, dgy back onto the (replicated) neighbours.
    @inline(__always)
    static func sobelAdjoint(_ dgx: Float, _ dgy: Float, _ h: Int, _ w: Int, _ y: Int, _ x: Int,
                             into g: UnsafeMutablePointer<Float>) {
        let u = max(y - 1, 0) * w, m = y * w, d = min(y + 1, h - 1) * w
        let l = max(x - 1, 0), r = min(x + 1, w - 1)
        g[u + r] += dgx; g[m + r] += 2 * dgx; g[d + r] += dgx
        g[u + l] -= dgx; g[m + l] -= 2 * dgx; g[d + l] -= dgx
        g[d + l] += dgy; g[d + x] += 2 * dgy; g[d + r] += dgy
        g[u + l] -= dgy; g[u + x] -= 2 * dgy; g[u + r] -= dgy
    }

    static let binomial: [Float] = [1, 6, 15, 20, 15, 6, 1].map { $0 / 64 }

    /// The separable binomial blur (rows, then columns) of src / 255, or (transpose) its adjoint applied to src;
    /// replicated borders.
    static func blur(_ src: UnsafePointer<Float>, _ h: Int, _ w: Int, transpose: Bool, into out: UnsafeMutablePointer<Float>,
                     accumulate: Bool = false) {
        var tmp = [Float](repeating: 0, count: h * w), res = [Float](repeating: 0, count: h * w)
        let scale: Float = 1 / 255
        // Forward: rows then columns; the adjoint: columns' adjoint then rows' adjoint (a scatter).
        func pass(_ input: [Float], rows: Bool, adjoint: Bool) -> [Float] {
            var o = [Float](repeating: 0, count: h * w)
            for y in 0..<h {
                for x in 0..<w {
                    for (k, c) in binomial.enumerated() {
                        let off = k - 3
                        let yy = rows ? y : min(max(y + off, 0), h - 1), xx = rows ? min(max(x + off, 0), w - 1) : x
                        if adjoint { o[yy * w + xx] += c * input[y * w + x] } else { o[y * w + x] += c * input[yy * w + xx] }
                    }
                }
            }
            return o
        }
        let input = (0..<(h * w)).map { src[$0] * scale }
        if transpose {
            tmp = pass(input, rows: false, adjoint: true); res = pass(tmp, rows: true, adjoint: true)
        } else {
            tmp = pass(input, rows: true, adjoint: false); res = pass(tmp, rows: false, adjoint: false)
        }
        for i in 0..<(h * w) { out[i] = accumulate ? out[i] + res[i] : res[i] }
    }

    /// The mean of each 4x4 tile / 255, repeated over the tile (self-adjoint up to the scale it already has).
    static func tile(_ src: UnsafePointer<Float>, _ h: Int, _ w: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        for ty in stride(from: 0, to: h, by: 4) {
            for tx in stride(from: 0, to: w, by: 4) {
                let ys = ty..<min(ty + 4, h), xs = tx..<min(tx + 4, w)
                var s: Float = 0
                for y in ys { for x in xs { s += src[y * w + x] } }
                let mean = s / Float(ys.count * xs.count) / 255
                for y in ys { for x in xs { out[y * w + x] = accumulate ? out[y * w + x] + mean : mean } }
            }
        }
    }

    /// The mean loss between a map and its hint (H * W elements) and its gradient with respect to the map: binary
    /// cross-entropy with logits, max(z, 0) - z t + log(1 + e^-|z|), whose gradient sigmoid(z) - t never
    /// saturates; or the squared error.
    func loss(_ map: UnsafePointer<Float>, hint: UnsafePointer<Float>, count: Int, dMap: UnsafeMutablePointer<Float>) -> Double {
        var total = 0.0
        let n = Float(count)
        for i in 0..<count {
            let t = hint[i]
            if usesCrossEntropy {
                let z = map[i]
                total += Double(max(z, 0) - z * t + log1p(exp(-abs(z))))
                dMap[i] = (1 / (1 + exp(-z)) - t) / n
            } else {
                let d = map[i] - t
                total += Double(d * d)
                dMap[i] = 2 * d / n
            }
        }
        return total / Double(count)
    }
}
