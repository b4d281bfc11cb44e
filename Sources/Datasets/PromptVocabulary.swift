// Prompts as class labels: the vocabulary is the sorted distinct non-empty prompt strings of the training rows, a
// prompt's label is its index there, and an empty prompt is no label (-1, which the trainer maps to the null
// class). Sorting is by Unicode scalar values, so the order (and so every label) is the same on every machine and
// in Python's sorted(). closest(to:) suggests known prompts for an unknown one in error messages.
import Foundation

public struct PromptVocabulary: Sendable, Equatable {
    /// Sorted distinct non-empty prompts; label i is prompts[i].
    public let prompts: [String]
    private let index: [String: Int32]

    public init<S: Sequence>(prompts rows: S) where S.Element == String {
        let distinct = Set(rows.filter { !$0.isEmpty })
        prompts = distinct.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
        var index: [String: Int32] = [:]
        for (i, p) in prompts.enumerated() { index[p] = Int32(i) }
        self.index = index
    }

    public var count: Int { prompts.count }

    /// The label of `prompt`: its index, -1 for "" (no label), nil when it is not in the vocabulary.
    public func label(of prompt: String) -> Int32? {
        prompt.isEmpty ? -1 : index[prompt]
    }

    /// Labels for rows of prompts, (N); prompts outside the vocabulary get -1.
    public func labels(for rows: [String]) -> [Int32] {
        rows.map { label(of: $0) ?? -1 }
    }

    /// Up to `limit` known prompts nearest to `prompt` by edit distance (Levenshtein over characters), nearest
    /// first, ties in vocabulary order.
    public func closest(to prompt: String, limit: Int = 3) -> [String] {
        let target = Array(prompt)
        let scored = prompts.enumerated().map { (i, p) in (editDistance(target, Array(p)), i) }
        return scored.sorted { $0 < $1 }.prefix(max(0, limit)).map { prompts[$0.1] }
    }

    /// A sentence for errors: "unknown prompt 'x'; closest known: 'a', 'b', 'c'".
    public func unknownPromptMessage(_ prompt: String, limit: Int = 3) -> String {
        let near = closest(to: prompt, limit: limit)
        if near.isEmpty { return "unknown prompt '\(prompt)': the training data has no prompts" }
        return "unknown prompt '\(prompt)'; closest known: " + near.map { "'\($0)'" }.joined(separator: ", ")
    }
}

/// Levenshtein distance (insertions, deletions, substitutions each cost 1), two-row dynamic programming.
public func editDistance<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0 ... b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1 ... a.count {
        current[0] = i
        for j in 1 ... b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
