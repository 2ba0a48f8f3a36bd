import LuaRuntime
import WebhookVerification

/// JSON as handler tests compare it: what a case expects is written as a Lua value, what a handler
/// stored or sent is JSON text; both are compared as JSON documents.
enum JSONText {
    static func encode(_ value: LuaValue, what: String) throws(HandlerTestError) -> [UInt8] {
        do {
            return try HandlerResponse.json(value)
        } catch {
            throw HandlerTestError("\(what): \(error.message.replacingOccurrences(of: "handler answer", with: "the value"))")
        }
    }

    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONValue.parse(bytes)
    }

    /// Whether two documents are equal: numbers by value (1 equals 1.0), objects whatever their
    /// key order, and an empty object equal to an empty array (Lua has one empty table).
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            guard x.count == y.count else { return false }
            return x.allSatisfy { entry in y.first { $0.key == entry.key }.map { equal(entry.value, $0.value) } ?? false }
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .array(let y)), (.array(let y), .object(let x)): return x.isEmpty && y.isEmpty
        case (.string(let x), .string(let y)): return x == y
        case (.boolean(let x), .boolean(let y)): return x == y
        case (.null, .null): return true
        default:
            guard let x = number(a), let y = number(b) else { return false }
            return x == y
        }
    }

    /// Whether `actual` holds every field `expected` names, with equal values (objects nested in
    /// objects likewise); anything but an object must be equal.
    static func contains(_ actual: JSONValue, _ expected: JSONValue) -> Bool {
        guard case .object(let wanted) = expected, case .object(let fields) = actual else { return equal(actual, expected) }
        return wanted.allSatisfy { entry in fields.first { $0.key == entry.key }.map { contains($0.value, entry.value) } ?? false }
    }

    private static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let text): Double(text)
        case .float(let number): number
        default: nil
        }
    }

    /// Compact text of a document or of bytes that are not one, cut at `limit` characters.
    static func show(_ bytes: [UInt8], limit: Int = 200) -> String {
        let text = parse(bytes).map { String(decoding: $0.bytes, as: UTF8.self) } ?? String(decoding: bytes, as: UTF8.self).debugDescription
        return text.count > limit ? String(text.prefix(limit)) + "…" : text
    }

    static func show(_ value: JSONValue) -> String { show(value.bytes) }
}
