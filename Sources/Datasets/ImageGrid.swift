// Contact sheets for inspecting data and samples: each cell is a group of panels side by side (e.g. hint | image,
// or hint | sample | reference), cells laid out row-major on a mid-gray background. Panels are gray (one channel)
// or RGB (three, planar (C, H, W)); a sheet with any RGB panel is RGB, its gray panels repeated over the channels.
import Foundation

/// One panel of every cell: `count` images (count, channels, H, W) with values in `range`.
public struct GridPanel {
    public var values: [Float]
    public var range: ClosedRange<Float>
    public var channels: Int
    public init(_ values: [Float], range: ClosedRange<Float>, channels: Int = 1) {
        self.values = values; self.range = range; self.channels = channels
    }
}

public enum ImageGrid {
    /// Background gray between cells and between the panels of a cell.
    public static let background: UInt8 = 128
    /// Pixels of background around cells, and between panels inside a cell.
    public static let cellPadding = 2, panelGap = 1

    /// hint | image pairs; values in [0,1] for hints and [-1,1] for images, each (H, W) single-channel.
    /// hints, images: (count, H, W). Result: gray (height, width).
    public static func pairs(hints: [Float], images: [Float], count: Int, height: Int, width: Int, columns: Int)
        -> (pixels: [UInt8], width: Int, height: Int)
    {
        groups([(hints, 0 ... 1), (images, -1 ... 1)], count: count, height: height, width: width, columns: columns)
    }

    /// Gray cells of panels.count images each, each panel (count, H, W) with values in its range, mapped to
    /// 0...255 (clamped). Result: gray (height, width).
    public static func groups(_ panels: [(values: [Float], range: ClosedRange<Float>)], count: Int, height: Int,
                              width: Int, columns: Int) -> (pixels: [UInt8], width: Int, height: Int) {
        let g = render(panels.map { GridPanel($0.values, range: $0.range) }, count: count, height: height,
                       width: width, columns: columns)
        return (g.pixels, g.width, g.height)
    }

    /// The sheet: gray (height, width) when every panel is gray, else interleaved RGB (height, width, 3).
    public static func render(_ panels: [GridPanel], count: Int, height: Int, width: Int, columns: Int)
        -> (pixels: [UInt8], width: Int, height: Int, channels: Int)
    {
        precondition(!panels.isEmpty && count > 0 && columns > 0 && height > 0 && width > 0,
                     "grid needs at least one panel, one image and one column")
        for p in panels {
            precondition(p.channels == 1 || p.channels == 3, "panels are gray or RGB")
            precondition(p.values.count == count * p.channels * height * width, "each panel must hold count*C*H*W values")
        }
        let outC = panels.contains { $0.channels == 3 } ? 3 : 1
        let cols = min(columns, count)
        let rows = (count + cols - 1) / cols
        let cellW = panels.count * width + (panels.count - 1) * panelGap
        let outW = cols * cellW + (cols + 1) * cellPadding
        let outH = rows * height + (rows + 1) * cellPadding
        var out = [UInt8](repeating: background, count: outW * outH * outC)
        for n in 0 ..< count {
            let x0 = cellPadding + (n % cols) * (cellW + cellPadding)
            let y0 = cellPadding + (n / cols) * (height + cellPadding)
            for (p, panel) in panels.enumerated() {
                let px = x0 + p * (width + panelGap)
                let lo = panel.range.lowerBound, span = panel.range.upperBound - panel.range.lowerBound
                for c in 0 ..< outC {
                    let plane = (n * panel.channels + min(c, panel.channels - 1)) * height * width
                    for i in 0 ..< height {
                        for j in 0 ..< width {
                            let v = (panel.values[plane + i * width + j] - lo) / span
                            let clamped = v.isNaN ? 0 : min(max(v, 0), 1)
                            out[((y0 + i) * outW + px + j) * outC + c] = UInt8((clamped * 255).rounded())
                        }
                    }
                }
            }
        }
        return (out, outW, outH, outC)
    }

    /// Nearest-neighbour enlargement by an integer factor (28-pixel digits are hard to see at 1x).
    /// pixels: (height, width, channels). Result: (height*factor, width*factor, channels).
    public static func upscale(_ pixels: [UInt8], width: Int, height: Int, channels: Int = 1, factor: Int)
        -> (pixels: [UInt8], width: Int, height: Int)
    {
        precondition(factor >= 1 && pixels.count == width * height * channels, "bad upscale arguments")
        let outW = width * factor, outH = height * factor
        var out = [UInt8](repeating: 0, count: outW * outH * channels)
        for y in 0 ..< outH {
            for x in 0 ..< outW {
                for c in 0 ..< channels {
                    out[(y * outW + x) * channels + c] = pixels[((y / factor) * width + x / factor) * channels + c]
                }
            }
        }
        return (out, outW, outH)
    }

    /// The sheet enlarged `factor` times and written as a PNG (gray or RGB): the one grid writer that `sample`,
    /// `eval` and the validation previews use.
    public static func writePNG(_ panels: [GridPanel], count: Int, height: Int, width: Int, columns: Int,
                                factor: Int = 3, to url: URL) throws {
        let g = render(panels, count: count, height: height, width: width, columns: columns)
        let big = upscale(g.pixels, width: g.width, height: g.height, channels: g.channels, factor: factor)
        if g.channels == 3 {
            try PNG.write(rgb: big.pixels, width: big.width, height: big.height, to: url)
        } else {
            try PNG.write(gray: big.pixels, width: big.width, height: big.height, to: url)
        }
    }
}
