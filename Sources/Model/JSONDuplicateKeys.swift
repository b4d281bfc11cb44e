// Finds a key that appears twice in one JSON object. JSONSerialization and JSONDecoder silently keep one of the
// two values, so a config with `"model_channels": 32` and later `"model_channels": 64` would build whichever the
// parser chose, not what its author meant: a duplicate is refused instead. A small scan over text that has
// already parsed as JSON; it tracks only object nesting and keys.
import Foundation

public enum JSONDuplicateKeys {
    private enum Frame {
        case object(keys: Set<String>, expectingKey: Bool)
        case array
    }

    /// The first key repeated within one object of `json` (compared after unescaping, so "a" and "\u0061" are the
    /// same key), or nil. `json` must be valid JSON.
    public static func first(in json: Data) -> String? {
        let bytes = [UInt8](json)
        var stack: [Frame] = []
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"): stack.append(.object(keys: [], expectingKey: true))
            case UInt8(ascii: "["): stack.append(.array)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = stack.popLast()
            case UInt8(ascii: ","):
                if case .object(let keys, _)? = stack.last { stack[stack.count - 1] = .object(keys: keys, expectingKey: true) }
            case UInt8(ascii: ":"):
                if case .object(let keys, _)? = stack.last { stack[stack.count - 1] = .object(keys: keys, expectingKey: false) }
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count && bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                if case .object(var keys, true)? = stack.last {
                    let token = Data(bytes[start...min(i, bytes.count - 1)])
                    let key = (try? JSONSerialization.jsonObject(with: token, options: .fragmentsAllowed) as? String)
                        ?? String(decoding: token, as: UTF8.self)
                    if !keys.insert(key).inserted { return key }
                    stack[stack.count - 1] = .object(keys: keys, expectingKey: false)
                }
            default: break
            }
            i += 1
        }
        return nil
    }
}
