// Every rank of a job must run the same job: ranks started with different options (mpirun's MPMD form
// `-np 1 ... : -np 1 ...`, or a wrapper that varies --seed per rank) would train a silent mix. At start the ranks
// compare a hash of each resolved option and of the checkpoint each resumes from; a difference is refused,
// naming the option.
import Foundation
import Distributed

public enum RankAgreement {
    /// A 52-bit hash (exact in a Double) of a string.
    static func hash(_ text: String) -> Double {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Double(h & ((1 << 52) - 1))
    }

    /// Throws naming every key whose value differs across ranks. `values`: key -> canonical text of the value.
    public static func check(_ values: [(key: String, value: String)], comm: any Communicator, what: (String) -> String) throws {
        guard comm.size > 1 else { return }
        // The reductions below move one number per key: ranks with different key counts would pass buffers of
        // different lengths and hang (or read past the shorter). Agree on the count first, in one number.
        var counts = [Double(values.count), -Double(values.count)]
        try comm.allReduce(&counts, op: .max)
        guard counts[0] == -counts[1] else {
            throw OptionsError(option: "the options", message: "rank \(comm.rank) has \(values.count) option keys, another rank \(counts[0] == Double(values.count) ? Int(-counts[1]) : Int(counts[0])): the ranks run different builds of controlnet. Install one build on every node")
        }
        var lo = values.map { hash($0.value) }, hi = lo
        try comm.allReduce(&lo, op: .min)
        try comm.allReduce(&hi, op: .max)
        let differing = values.indices.filter { lo[$0] != hi[$0] }.map { what(values[$0].key) }
        guard differing.isEmpty else {
            throw OptionsError(option: differing[0], message: "differs across the \(comm.size) ranks (rank \(comm.rank) has its own value)\(differing.count > 1 ? "; so do " + differing.dropFirst().joined(separator: ", ") : ""). Start every rank with the same options")
        }
    }

    /// The options as (key, JSON text of the value) pairs, sorted: every CodingKey, with "null" for an absent
    /// value. The encoder leaves nil options out, so the keys it writes depend on the options: a rank given --hint
    /// and one without would otherwise reduce arrays of different lengths.
    public static func optionValues(_ options: TrainOptions) -> [(key: String, value: String)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let object = (try? encoder.encode(options)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
        return TrainOptions.CodingKeys.allCases.map(\.rawValue).sorted().map { key in
            let value = object[key].flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed, .sortedKeys]) }
            return (key, value.map { String(decoding: $0, as: UTF8.self) } ?? "null")
        } + [("overwrite", "\(options.overwrite)")]
    }

    /// The command line as (option, value) pairs, sorted by option, for the commands that keep no resolved-options
    /// record as training does (sample, eval): under mpirun every rank gets the same words, so ranks that differ were
    /// started differently (the MPMD form, or a per-rank wrapper) and would write a mix of two jobs' images.
    /// "--key=value" and "--key value..." read alike; a repeated option's values are joined in order; words before
    /// the first option are positional.
    public static func commandLineValues(_ arguments: [String]) -> [(key: String, value: String)] {
        var values: [String: [String]] = [:], key = "positional arguments"
        for word in arguments {
            if word.hasPrefix("--") {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                key = parts[0]
                values[key, default: []].append(parts.count > 1 ? parts[1] : "")
            } else {
                var list = values[key, default: [""]]
                list[list.count - 1] += (list[list.count - 1].isEmpty ? "" : " ") + word
                values[key] = list
            }
        }
        return values.keys.sorted().map { ($0, values[$0]!.joined(separator: "\u{1}")) }
    }

    /// Refuses ranks started with different command lines, naming the option: the set of options first (one
    /// number), then each option's value. `ignoring`: options that may differ per rank (--threads: each node's
    /// own cores; the images do not depend on it).
    public static func checkCommandLine(_ arguments: [String], ignoring: Set<String> = [], comm: any Communicator) throws {
        guard comm.size > 1 else { return }
        let values = commandLineValues(arguments).filter { !ignoring.contains($0.key) }
        try check([("names", values.map(\.key).joined(separator: " "))], comm: comm) { _ in
            "the set of options given (\(values.map(\.key).joined(separator: " ")) on rank \(comm.rank))"
        }
        try check(values, comm: comm) { $0 }
    }

    /// "batch_size" -> "--batch-size".
    public static func flag(_ key: String) -> String { "--" + key.replacingOccurrences(of: "_", with: "-") }
}
