// `controlnet diff-weights`' comparison of two weight files, tensor by tensor, and its JSON report. The report is
// encoded by JSONEncoder, never by string interpolation: tensor names come from the files and may hold quotes,
// backslashes or control characters, which must come out escaped so that the output stays JSON.
import Foundation
import SafeTensors

public struct WeightDiffReport: Codable, Equatable, Sendable {
    public var tensors = 0
    public var values = 0
    public var bitIdentical = true
    /// NaN or infinite values, counted in both files.
    public var nonFiniteValues = 0
    /// The largest absolute difference; infinite when a value is NaN or infinite on one side only (or NaN on both).
    public var maxAbsDiff = 0.0
    /// The tensor holding it ("" when every value agrees).
    public var worstTensor = ""

    enum CodingKeys: String, CodingKey {
        case tensors, values, bitIdentical = "bit_identical", nonFiniteValues = "non_finite_values"
        case maxAbsDiff = "max_abs_diff", worstTensor = "worst_tensor"
    }

    public init() {}

    /// One line of JSON; a non-finite difference is written as the string "inf" or "nan" (JSON numbers must be
    /// finite).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        // Encoding a struct of plain values with a non-conforming-float strategy cannot fail.
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

public struct WeightDiffError: Error, CustomStringConvertible {
    public let description: String
}

public enum WeightDiff {
    /// Compares `a` and `b` (named `nameA`, `nameB` in errors); they must hold the same tensor names and shapes (the
    /// same values in a transposed layout are another tensor).
    public static func compare(_ a: SafeTensorsFile, _ b: SafeTensorsFile, nameA: String, nameB: String) throws -> WeightDiffReport {
        guard Set(a.names) == Set(b.names) else {
            let onlyA = Set(a.names).subtracting(b.names).sorted(), onlyB = Set(b.names).subtracting(a.names).sorted()
            throw WeightDiffError(description: "tensor names differ: only in \(nameA): \(onlyA.prefix(5)); only in \(nameB): \(onlyB.prefix(5))")
        }
        var r = WeightDiffReport()
        r.tensors = a.names.count
        // A value that is NaN or infinite on one side only (or NaN on both) is an infinite difference: two files
        // are only "close" when their finite values are.
        for name in a.names.sorted() {
            if let sa = a.info(name)?.shape, let sb = b.info(name)?.shape, sa != sb {
                throw WeightDiffError(description: "tensor \(name): shape \(sa) in \(nameA), \(sb) in \(nameB)")
            }
            let x = try a.floats(name), y = try b.floats(name)
            guard x.count == y.count else {
                throw WeightDiffError(description: "tensor \(name): \(x.count) values in \(nameA), \(y.count) in \(nameB)")
            }
            for i in 0..<x.count {
                r.nonFiniteValues += (x[i].isFinite ? 0 : 1) + (y[i].isFinite ? 0 : 1)
                if x[i].bitPattern != y[i].bitPattern { r.bitIdentical = false }
                // A NaN never agrees, even with the same bits: two broken files must not pass a tolerance check.
                let d: Double
                if x[i].isFinite && y[i].isFinite {
                    d = abs(Double(x[i]) - Double(y[i]))
                } else {
                    d = x[i] == y[i] ? 0 : .infinity    // equal infinities agree; NaN never does
                }
                if d > r.maxAbsDiff { r.maxAbsDiff = d; r.worstTensor = name }
            }
            r.values += x.count
        }
        return r
    }
}
