// The control-hint kinds, chosen by name (e.g. `--hint scribble`). Every kind is a pure function from a uint8
// image (H, W) to a uint8 hint (H, W) read as [0, 1]; random kinds also take (seed, sample index).
public enum HintKind: String, Sendable, CaseIterable, Codable {
    /// cv2.Canny(img, 100, 200): 0/255 edges.
    case canny
    /// Canny with per-sample random thresholds (low in [100, 200), high in [200, 300)): augmentation.
    case cannyRandom = "canny-random"
    /// Sobel gradient magnitude sqrt(dx^2 + dy^2) / 1020 (one full 0->255 step), clipped to 1.
    case sobel
    /// Binary mask: pixel >= 128.
    case mask
    /// Thick strokes: the mask's skeleton (Zhang-Suen thinning) dilated by a 3x3 square.
    case scribble
    /// Low resolution: the mean of each 4x4 tile, repeated over the tile.
    case tile
    /// Gaussian-like blur: the 7-tap binomial kernel (sigma ~1.22) along rows then columns, edges replicated.
    case blur

    /// Deterministic kinds are computed once per dataset and cached; random ones are computed per request.
    public var isDeterministic: Bool { self != .cannyRandom }
}
