// An in-memory image dataset: raw uint8 pixels (N, C, H, W) plus optional labels, and the [-1, 1] view the
// diffusion model trains on.
import Foundation

public struct ImageDataset: Sendable {
    public let name: String
    public let count: Int, channels: Int, height: Int, width: Int
    /// (N, C, H, W), raw 0...255.
    public let pixels: [UInt8]
    /// (N), or nil for unlabeled data.
    public let labels: [Int32]?

    public init(name: String, count: Int, channels: Int, height: Int, width: Int, pixels: [UInt8], labels: [Int32]?) {
        precondition(count > 0 && channels > 0 && height > 0 && width > 0, "dataset dimensions must be positive")
        precondition(pixels.count == count * channels * height * width, "pixels must hold N*C*H*W bytes")
        precondition(labels == nil || labels!.count == count, "labels must hold N entries")
        self.name = name
        self.count = count
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
    }

    /// Values per image: C*H*W.
    public var imageSize: Int { channels * height * width }

    /// Image i mapped to [-1, 1] (0 -> -1, 255 -> 1). out: (C, H, W).
    public func image(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
        let n = imageSize
        pixels.withUnsafeBufferPointer { p in
            let base = p.baseAddress! + i * n
            for k in 0 ..< n { out[k] = Float(base[k]) / 127.5 - 1 }
        }
    }

    /// The uint8 pixels of image i. result: (C, H, W).
    public func rawImage(_ i: Int) -> ArraySlice<UInt8> {
        precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
        return pixels[i * imageSize ..< (i + 1) * imageSize]
    }

    /// The samples at `indices`, in that order, as a new dataset (labels follow).
    public func subset(_ indices: [Int], name: String) -> ImageDataset {
        let n = imageSize
        var out = [UInt8]()
        out.reserveCapacity(indices.count * n)
        for i in indices { out.append(contentsOf: rawImage(i)) }
        return ImageDataset(name: name, count: indices.count, channels: channels, height: height, width: width,
                            pixels: out, labels: labels.map { l in indices.map { l[$0] } })
    }
}
