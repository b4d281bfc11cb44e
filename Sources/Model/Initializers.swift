// Parameter initialisation as PyTorch's defaults, so a freshly built network trains like the reference:
// conv/linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)),
// GroupNorm weight 1 and bias 0, embeddings N(0, 1). Each tensor draws from its own seeded stream, keyed by its
// offset in the arena, so the result does not depend on the order tensors are visited in.
import Randomness

public enum Initializers {
    public static func initialize(_ table: ParameterTable, _ params: UnsafeMutablePointer<Float>, seed: UInt64) {
        var fanIn = 1    // a bias follows its weight in registration order and shares its fan-in
        for e in table.entries {
            let p = params + e.offset
            var rng = RandomStream(seed, RandomPurpose.initialization.rawValue, UInt64(e.offset))
            if e.name.hasPrefix("label_embed") {
                for i in 0..<e.count { p[i] = rng.normal() }
            } else if e.name.contains("norm") {
                p.update(repeating: e.name.hasSuffix(".weight") ? 1 : 0, count: e.count)
            } else {
                if e.shape.count > 1 { fanIn = e.shape.dropFirst().reduce(1, *) }
                let bound = 1 / Double(fanIn).squareRoot()
                for i in 0..<e.count { p[i] = Float((rng.uniform() * 2 - 1) * bound) }
            }
        }
    }
}
