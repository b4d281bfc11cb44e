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
        ImageResize.planes(fromInterleaved: try interleaved(channels: out), channels: out)
    }

    /// The image as interleaved pixels (height, width, channels) with `channels` 1 (gray) or 3 (RGB).
    public func interleaved(channels out: Int) throws -> [UInt8] {
        guard out == 1 || out == 3 else {
            throw ImageDataError.invalidArgument(name: "channels", value: "\(out)", expected: "1 (gray) or 3 (RGB)")
        }
        if channels == out { return pixels }  // gray -> gray, RGB -> RGB: nothing to do
        let n = width * height, c = channels
        return [UInt8](unsafeUninitializedCapacity: out * n) { dst, count in
            pixels.withUnsafeBufferPointer { src in
                // One loop per (input, output) channel pair: a per-pixel switch would dominate a 512x512 image.
                switch (c, out) {
                case (1, _):
                    for k in 0 ..< n { dst[3 * k] = src[k]; dst[3 * k + 1] = src[k]; dst[3 * k + 2] = src[k] }
                case (2, _):
                    for k in 0 ..< n {
                        let v = UInt8(compositeOnBlack(Int(src[2 * k]), alpha: Int(src[2 * k + 1])))
                        for j in 0 ..< out { dst[out * k + j] = v }
                    }
                case (3, _):
                    for k in 0 ..< n { dst[k] = luma(Int(src[3 * k]), Int(src[3 * k + 1]), Int(src[3 * k + 2])) }
                default:  // 4: RGBA
                    for k in 0 ..< n {
                        let a = Int(src[4 * k + 3])
                        let r = compositeOnBlack(Int(src[4 * k]), alpha: a)
                        let g = compositeOnBlack(Int(src[4 * k + 1]), alpha: a)
                        let b = compositeOnBlack(Int(src[4 * k + 2]), alpha: a)
                        if out == 1 {
                            dst[k] = luma(r, g, b)
                        } else {
                            dst[3 * k] = UInt8(r); dst[3 * k + 1] = UInt8(g); dst[3 * k + 2] = UInt8(b)
                        }
                    }
                }
            }
            count = out * n
        }
    }

    /// What the model trains on, as diffusers prepares it: converted to `channels` (1 or 3), short side resized to
    /// `size`, centre-cropped to size x size. Result: planes (channels, size, size).
    public func resizedPlanes(channels out: Int, size: Int, filter: ResizeFilter) throws -> [UInt8] {
        let converted = try interleaved(channels: out)
        let square = ImageResize.resizeShortSideAndCenterCrop(interleaved: converted, channels: out, height: height,
                                                              width: width, size: size, filter: filter)
        return ImageResize.planes(fromInterleaved: square, channels: out)
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
