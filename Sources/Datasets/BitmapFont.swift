// A 3x5 pixel font for plot tick labels: digits and the few symbols numbers need ('.', '-', 'e', 'k').
enum BitmapFont {
    static let glyphWidth = 3, glyphHeight = 5

    /// Each glyph is 5 rows of 3 bits, most significant bit = leftmost pixel.
    static let glyphs: [Character: [UInt8]] = [
        "0": [0b111, 0b101, 0b101, 0b101, 0b111], "1": [0b010, 0b110, 0b010, 0b010, 0b111],
        "2": [0b111, 0b001, 0b111, 0b100, 0b111], "3": [0b111, 0b001, 0b011, 0b001, 0b111],
        "4": [0b101, 0b101, 0b111, 0b001, 0b001], "5": [0b111, 0b100, 0b111, 0b001, 0b111],
        "6": [0b111, 0b100, 0b111, 0b101, 0b111], "7": [0b111, 0b001, 0b010, 0b010, 0b010],
        "8": [0b111, 0b101, 0b111, 0b101, 0b111], "9": [0b111, 0b101, 0b111, 0b001, 0b111],
        ".": [0b000, 0b000, 0b000, 0b000, 0b010], "-": [0b000, 0b000, 0b111, 0b000, 0b000],
        "e": [0b000, 0b111, 0b111, 0b100, 0b111], "k": [0b100, 0b101, 0b110, 0b101, 0b101],
        " ": [0, 0, 0, 0, 0],
    ]

    /// Width in pixels of `text` at `scale` (one blank column between glyphs).
    static func width(_ text: String, scale: Int) -> Int {
        text.isEmpty ? 0 : (text.count * (glyphWidth + 1) - 1) * scale
    }

    /// Draws `text` with its top-left corner at (x, y) into rgb: (height, width, 3); clipped at the edges.
    static func draw(_ text: String, x: Int, y: Int, scale: Int, color: (UInt8, UInt8, UInt8),
                     into rgb: inout [UInt8], width: Int, height: Int) {
        var cx = x
        for ch in text {
            let rows = glyphs[ch] ?? glyphs[" "]!
            for (r, bits) in rows.enumerated() {
                for c in 0 ..< glyphWidth where bits & (1 << (glyphWidth - 1 - c)) != 0 {
                    for sy in 0 ..< scale {
                        for sx in 0 ..< scale {
                            let px = cx + c * scale + sx, py = y + r * scale + sy
                            guard px >= 0 && px < width && py >= 0 && py < height else { continue }
                            let o = (py * width + px) * 3
                            rgb[o] = color.0; rgb[o + 1] = color.1; rgb[o + 2] = color.2
                        }
                    }
                }
            }
            cx += (glyphWidth + 1) * scale
        }
    }
}
