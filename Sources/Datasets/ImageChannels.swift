// Channel conversion from a decoded image to the model's in_channels / hint_channels (1 or 3), as planes
// (C, H, W). The rules, and where they differ from Pillow's convert() (which diffusers applies):
// - alpha is composited on black: c * a / 255, rounded to nearest (the rule; Pillow's convert("RGB") and
//   convert("L") drop alpha instead, which shows whatever colour transparent pixels happen to hold);
// - RGB -> gray is ITU-R 601-2 luma exactly as Pillow's convert("L"):
//   L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16, i.e. R*299/1000 + G*587/1000 + B*114/1000 rounded to
//   nearest in 16-bit fixed point;
// - gray -> RGB replicates the gray value in the three planes, as Pillow's convert("RGB").
import Foundation

extension DecodedImage {
    /// The image as planes (channels, height, width) with `channels` 1 (gray) or 3 (RGB).
    public func planar(channels out: Int) throws -> [UInt8] {
        guard out == 1 || out == 3 else {
            throw ImageDataError.invalidArgument(name: "channels", value: "\(out)", expected: "1 (gray) or 3 (RGB)")
        }
        let n = width * height
        let c = channels
        return [UInt8](unsafeUninitializedCapacity: out * n) { dst, count in
            pixels.withUnsafeBufferPointer { src in
                for k in 0 ..< n {
                    let p = k * c
                    var r: Int, g: Int, b: Int
                    switch c {
                    case 1, 2: r = Int(src[p]); g = r; b = r
                    default: r = Int(src[p]); g = Int(src[p + 1]); b = Int(src[p + 2])
                    }
                    if c == 2 || c == 4 {
                        let a = Int(src[p + c - 1])
                        r = compositeOnBlack(r, alpha: a)
                        g = compositeOnBlack(g, alpha: a)
                        b = compositeOnBlack(b, alpha: a)
                    }
                    if out == 1 {
                        dst[k] = c <= 2 ? UInt8(r) : luma(r, g, b)
                    } else {
                        dst[k] = UInt8(r)
                        dst[n + k] = UInt8(g)
                        dst[2 * n + k] = UInt8(b)
                    }
                }
            }
            count = out * n
        }
    }
}

/// c * a / 255 rounded to nearest (no ties exist: 255 is odd).
@inline(__always)
func compositeOnBlack(_ c: Int, alpha a: Int) -> Int { (c * a + 127) / 255 }

/// Pillow's convert("L") luma: ITU-R 601-2 weights in 16-bit fixed point, rounded to nearest.
@inline(__always)
public func luma(_ r: Int, _ g: Int, _ b: Int) -> UInt8 {
    UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
}
