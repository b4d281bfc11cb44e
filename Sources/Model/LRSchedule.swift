// The learning-rate schedule: linear warmup, then constant or cosine decay to min_lr_fraction * lr at the last
// step. A pure function of the optimizer step, so a resumed run continues on the same curve.
import Foundation

public enum LRScheduleKind: String, Codable, Sendable, CaseIterable { case constant, cosine }

public struct LRSchedule: Sendable, Equatable {
    public let base: Double, warmup: Int, total: Int, kind: LRScheduleKind, minFraction: Double
    public init(base: Double, warmup: Int, total: Int, kind: LRScheduleKind, minFraction: Double) {
        self.base = base; self.warmup = warmup; self.total = total; self.kind = kind; self.minFraction = minFraction
    }

    /// Learning rate at optimizer step `step` (1-based).
    public func lr(at step: Int) -> Double {
        if warmup > 0 && step <= warmup { return base * Double(step) / Double(warmup) }
        switch kind {
        case .constant: return base
        case .cosine:
            let span = max(total - warmup, 1)
            let progress = min(max(Double(step - warmup) / Double(span), 0), 1)
            return base * (minFraction + (1 - minFraction) * 0.5 * (1 + cos(.pi * progress)))
        }
    }
}
