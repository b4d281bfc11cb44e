// 3x3 Sobel derivatives of a uint8 image with OpenCV's BORDER_REPLICATE (edge pixels repeated), in exact integers:
// dx = [-1 0 1] * [1 2 1]^T, dy its transpose; the same numbers cv2.Sobel(img, CV_16S, 1, 0, 3) gives.
public enum Sobel {
    /// image: (H, W) uint8; dx, dy: (H, W), each in -1020...1020.
    public static func gradients(_ image: UnsafePointer<UInt8>, height: Int, width: Int,
                                 dx: UnsafeMutablePointer<Int32>, dy: UnsafeMutablePointer<Int32>) {
        precondition(height > 0 && width > 0, "Sobel needs a non-empty image")
        for i in 0 ..< height {
            let up = image + max(i - 1, 0) * width
            let mid = image + i * width
            let down = image + min(i + 1, height - 1) * width
            for j in 0 ..< width {
                let l = max(j - 1, 0), r = min(j + 1, width - 1)
                let ul = Int32(up[l]), uc = Int32(up[j]), ur = Int32(up[r])
                let ml = Int32(mid[l]), mr = Int32(mid[r])
                let dl = Int32(down[l]), dc = Int32(down[j]), dr = Int32(down[r])
                dx[i * width + j] = (ur + 2 * mr + dr) - (ul + 2 * ml + dl)
                dy[i * width + j] = (dl + 2 * dc + dr) - (ul + 2 * uc + ur)
            }
        }
    }
}
