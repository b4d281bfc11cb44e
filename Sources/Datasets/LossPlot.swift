// The training-loss curve as an RGB image: axes with "nice" ticks (1, 2, 5 x 10^k) labelled in the built-in
// bitmap font, light grid lines, the raw loss in light blue and a centred moving average in dark blue
// (diffusion losses are noisy; the average shows the trend). Non-finite losses are skipped.
import Foundation

public enum LossPlot {
    static let black: (UInt8, UInt8, UInt8) = (0, 0, 0)
    static let grid: (UInt8, UInt8, UInt8) = (225, 225, 225)
    static let raw: (UInt8, UInt8, UInt8) = (160, 195, 235), smooth: (UInt8, UInt8, UInt8) = (20, 70, 160)

    /// steps, losses: (n) pairs. Result: rgb (height, width, 3).
    public static func render(steps: [Int], losses: [Double], width: Int, height: Int)
        -> (rgb: [UInt8], width: Int, height: Int)
    {
        precondition(steps.count == losses.count, "steps and losses must pair up")
        precondition(width >= 64 && height >= 48, "a loss plot needs at least 64x48 pixels")
        var canvas = Canvas(width: width, height: height)
        let points = zip(steps, losses).filter { $0.1.isFinite }
        let scale = width >= 480 && height >= 320 ? 2 : 1

        let xs = points.map { Double($0.0) }, ys = points.map { $0.1 }
        let xTicks = niceTicks(lo: xs.min() ?? 0, hi: xs.max() ?? 1, count: 6)
        let yTicks = niceTicks(lo: ys.min() ?? 0, hi: ys.max() ?? 1, count: 5)
        let yLabels = yTicks.values.map { label($0, step: yTicks.step) }
        let xLabels = xTicks.values.map { label($0, step: xTicks.step) }

        let glyphH = BitmapFont.glyphHeight * scale
        let left = 6 * scale + (yLabels.map { BitmapFont.width($0, scale: scale) }.max() ?? 0)
        let right = 4 * scale + BitmapFont.width(xLabels.last ?? "", scale: scale) / 2
        let top = 4 * scale + glyphH / 2, bottom = 6 * scale + glyphH
        let plotW = width - left - right, plotH = height - top - bottom
        guard plotW > 8 && plotH > 8 else { return (canvas.rgb, width, height) }

        func px(_ x: Double) -> Int { left + Int(((x - xTicks.lo) / (xTicks.hi - xTicks.lo) * Double(plotW - 1)).rounded()) }
        func py(_ y: Double) -> Int { top + plotH - 1 - Int(((y - yTicks.lo) / (yTicks.hi - yTicks.lo) * Double(plotH - 1)).rounded()) }

        for (v, text) in zip(yTicks.values, yLabels) {
            let y = py(v)
            canvas.line(left, y, left + plotW - 1, y, grid)
            canvas.line(left - 2 * scale, y, left, y, black)
            BitmapFont.draw(text, x: left - 3 * scale - BitmapFont.width(text, scale: scale), y: y - glyphH / 2,
                            scale: scale, color: black, into: &canvas.rgb, width: width, height: height)
        }
        for (v, text) in zip(xTicks.values, xLabels) {
            let x = px(v)
            canvas.line(x, top, x, top + plotH - 1, grid)
            canvas.line(x, top + plotH, x, top + plotH + 2 * scale, black)
            BitmapFont.draw(text, x: x - BitmapFont.width(text, scale: scale) / 2, y: top + plotH + 4 * scale,
                            scale: scale, color: black, into: &canvas.rgb, width: width, height: height)
        }

        // Raw curve, then a centred moving average on top (centred, so the trend does not lag behind the data);
        // the window grows with the run so long runs stay readable.
        let half = points.count / 100
        var prefix = [0.0]
        for y in ys { prefix.append(prefix.last! + y) }
        var previous: (Int, Int)? = nil
        for (x, y) in zip(xs, ys) {
            let p = (px(x), py(y))
            if let q = previous { canvas.line(q.0, q.1, p.0, p.1, raw) } else { canvas.set(p.0, p.1, raw) }
            previous = p
        }
        previous = nil
        for k in 0 ..< points.count {
            let a = max(0, k - half), b = min(points.count, k + half + 1)
            let p = (px(xs[k]), py((prefix[b] - prefix[a]) / Double(b - a)))
            if let q = previous { canvas.line(q.0, q.1, p.0, p.1, smooth, thick: scale > 1) } else { canvas.set(p.0, p.1, smooth) }
            previous = p
        }
        canvas.line(left, top, left, top + plotH, black)                      // y axis
        canvas.line(left, top + plotH, left + plotW - 1, top + plotH, black)  // x axis
        return (canvas.rgb, width, height)
    }

    /// Round-number ticks covering [lo, hi]: step 1, 2 or 5 x 10^k, axis limits snapped outward to it.
    static func niceTicks(lo: Double, hi: Double, count: Int) -> (lo: Double, hi: Double, step: Double, values: [Double]) {
        var (a, b) = (lo, hi)
        if !(b > a) { let pad = max(abs(a) * 0.1, 1e-3); a -= pad; b += pad }
        let rough = (b - a) / Double(max(count - 1, 1))
        let magnitude = pow(10, (log10(rough)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        let first = (a / step).rounded(.down) * step, last = (b / step).rounded(.up) * step
        let n = Int(((last - first) / step).rounded())
        return (first, last, step, (0 ... n).map { first + Double($0) * step })
    }

    /// A tick label with as many decimals as the step needs; "k" for thousands of steps, e-notation for tiny values.
    static func label(_ v: Double, step: Double) -> String {
        if abs(v) < step * 1e-6 { return "0" }
        if step >= 1000 && (v / 1000).rounded() == v / 1000 { return "\(Int((v / 1000).rounded()))k" }
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        if decimals > 4 {
            let e = Int(log10(abs(v)).rounded(.down))
            let mantissa = v / pow(10, Double(e))
            let m = String(format: "%.1f", mantissa).replacingOccurrences(of: ".0", with: "")
            return "\(m)e\(e)"
        }
        return String(format: "%.\(decimals)f", v)
    }
}

/// An RGB raster with clipped pixel writes and Bresenham lines.
struct Canvas {
    let width: Int, height: Int
    var rgb: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        rgb = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0 && x < width && y >= 0 && y < height else { return }
        let o = (y * width + x) * 3
        rgb[o] = c.0; rgb[o + 1] = c.1; rgb[o + 2] = c.2
    }

    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thick: Bool = false) {
        var (x, y) = (x0, y0)
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, c)
            if thick { set(x + 1, y, c); set(x, y + 1, c) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }
}
