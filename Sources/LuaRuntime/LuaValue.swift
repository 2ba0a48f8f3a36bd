/// A Lua value that can cross actor boundaries: what async host functions hand back to a resumed
/// coroutine, and what an invocation returns.
public enum LuaValue: Sendable, Equatable {
    case `nil`
    case boolean(Bool)
    case integer(Int64)
    case number(Double)
    case string([UInt8])
    /// A table: `array` becomes keys 1...n, `fields` the string keys.
    case table(array: [LuaValue], fields: [String: LuaValue])
    /// JSON text, converted to Lua values by the host's decoder when pushed.
    case json([UInt8])
    /// `json.null`.
    case null

    public static func string(_ text: String) -> LuaValue { .string(Array(text.utf8)) }

    /// The string's text, when the value is a string of valid UTF-8.
    public var text: String? {
        if case .string(let bytes) = self { return String(validating: bytes, as: UTF8.self) }
        return nil
    }
}
