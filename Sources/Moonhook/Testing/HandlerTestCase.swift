import Foundation
import LuaRuntime
import WebhookVerification

/// One case of a `*_test.lua` file, as read from the table it returns (see docs/handlers.md):
/// the request to send, the world around the handler, and what must follow.
struct HandlerTestCase: Sendable {
    /// The request body: a fixture file's bytes, or an inline body.
    enum Body: Sendable {
        case file(URL)
        case inline([UInt8])
    }

    var index: Int
    var name: String
    var body: Body
    var contentType: String?
    /// `set`: body values by JSON pointer, as JSON text.
    var values: [(pointer: String, value: String)]
    var type: String?
    var headers: [(name: String, value: String)]
    var attempt: Int
    /// Values of the environment variables the source's `source.yaml` reads.
    var secrets: [String: String]
    /// `kv`: the source's keys before the case runs, as JSON text.
    var seed: [(key: String, value: [UInt8])]
    var stubs: [CannedHTTP.Stub]
    var now: Date
    var expectation: HandlerTestExpectation
    var hasCheck: Bool

    /// 2026-01-01T00:00:00Z: the time of a case that sets none.
    static let defaultNow = Date(timeIntervalSince1970: 1_767_225_600)

    static let fields: Set<String> = [
        "name", "event", "body", "content_type", "set", "type", "headers", "attempt", "secrets", "kv", "http", "now", "expect", "check",
    ]

    /// Reads case `index` (1-based) from `value`; `defaults` are the file's own `secrets` and `now`.
    init(index: Int, value: LuaValue, defaults: [String: LuaValue], testFile: URL) throws(HandlerTestError) {
        self.index = index
        guard case .table(let array, let fields) = value, array.isEmpty else { throw HandlerTestError("case \(index): a case must be a table of named fields") }
        if let unknown = fields.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            throw HandlerTestError("case \(index): unknown field '\(unknown)'\(Suggestion.phrase(unknown, among: Self.fields))")
        }
        let reader = FieldReader(fields: fields, what: "case \(index)")
        name = try reader.string("name") ?? "case \(index)"
        switch (fields["event"], fields["body"]) {
        case (.some, .some): throw HandlerTestError("case \(index): give 'event' (a fixture file) or 'body', not both")
        case (let event?, nil):
            guard let path = event.text else { throw HandlerTestError("case \(index): 'event' must be a file path") }
            body = .file(URL(fileURLWithPath: path, relativeTo: testFile.deletingLastPathComponent()).standardizedFileURL)
        case (nil, let inline?):
            switch inline {
            case .string(let bytes): body = .inline(bytes)
            default: body = .inline(try JSONText.encode(inline, what: "case \(index): 'body'"))
            }
        case (nil, nil): throw HandlerTestError("case \(index): give 'event' (a fixture file, relative to the test file) or 'body'")
        }
        contentType = try reader.string("content_type")
        values = try reader.table("set").sorted { $0.key < $1.key }.map { (pointer, value) throws(HandlerTestError) in
            guard pointer.hasPrefix("/") else { throw HandlerTestError("case \(index): 'set' keys are JSON pointers such as /data/status, got '\(pointer)'") }
            return (pointer, String(decoding: try JSONText.encode(value, what: "case \(index): set \(pointer)"), as: UTF8.self))
        }
        type = try reader.string("type")
        headers = try reader.strings("headers").sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        attempt = try reader.integer("attempt").map(Int.init) ?? 1
        guard attempt >= 1 else { throw HandlerTestError("case \(index): 'attempt' must be 1 or more") }
        let fileSecrets = try FieldReader(fields: defaults, what: "the file").strings("secrets")
        secrets = fileSecrets.merging(try reader.strings("secrets")) { $1 }
        seed = try reader.table("kv").sorted { $0.key < $1.key }.map { (key, value) throws(HandlerTestError) in
            (key, try JSONText.encode(value, what: "case \(index): kv \(key)"))
        }
        stubs = try reader.list("http").enumerated().map { (offset, value) throws(HandlerTestError) in
            try Self.stub(value, index: offset + 1, what: "case \(index): http[\(offset + 1)]")
        }
        let time = try fields["now"].map { (value) throws(HandlerTestError) in try Self.time(value, what: "case \(index)") }
        let fileTime = try defaults["now"].map { (value) throws(HandlerTestError) in try Self.time(value, what: "the file") }
        now = time ?? fileTime ?? Self.defaultNow
        expectation = try HandlerTestExpectation(fields["expect"], what: "case \(index): expect")
        hasCheck = fields["check"] != nil
        if hasCheck, fields["check"] != .boolean(true) { throw HandlerTestError("case \(index): 'check' must be a function") }
    }

    private static func stub(_ value: LuaValue, index: Int, what: String) throws(HandlerTestError) -> CannedHTTP.Stub {
        guard case .table(_, let fields) = value else { throw HandlerTestError("\(what): a canned response must be a table") }
        let known: Set<String> = ["method", "url", "status", "headers", "body", "json"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw HandlerTestError("\(what): unknown field '\(unknown)'\(Suggestion.phrase(unknown, among: known))")
        }
        let reader = FieldReader(fields: fields, what: what)
        guard let url = try reader.string("url") else { throw HandlerTestError("\(what): 'url' is required") }
        var body = try reader.string("body").map { Array($0.utf8) } ?? []
        var headers = try reader.strings("headers")
        if let json = fields["json"] {
            body = try JSONText.encode(json, what: "\(what): json")
            if !headers.keys.contains(where: { $0.lowercased() == "content-type" }) { headers["content-type"] = "application/json" }
        }
        let status = try reader.integer("status") ?? 200
        guard (100...599).contains(status) else { throw HandlerTestError("\(what): 'status' must be from 100 to 599") }
        return CannedHTTP.Stub(method: try reader.string("method"), url: url, status: status, headers: headers, body: body, index: index)
    }

    /// Unix seconds, or an RFC 3339 time.
    static func time(_ value: LuaValue, what: String) throws(HandlerTestError) -> Date {
        switch value {
        case .integer(let seconds): return Date(timeIntervalSince1970: Double(seconds))
        case .number(let seconds) where seconds.isFinite: return Date(timeIntervalSince1970: seconds)
        case .string:
            if let text = value.text, let date = try? Date(text, strategy: .iso8601) { return date }
            if let text = value.text, let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        default: break
        }
        throw HandlerTestError("\(what): 'now' must be Unix seconds or a time such as 2026-01-01T12:00:00Z")
    }
}

/// Typed reads of a case's fields, each failing with a one-line message that names the field.
struct FieldReader {
    let fields: [String: LuaValue]
    let what: String

    func string(_ name: String) throws(HandlerTestError) -> String? {
        guard let value = fields[name] else { return nil }
        guard let text = value.text else { throw HandlerTestError("\(what): '\(name)' must be a string") }
        return text
    }

    func integer(_ name: String) throws(HandlerTestError) -> Int64? {
        switch fields[name] {
        case nil: return nil
        case .integer(let number)?: return number
        case .number(let number)? where number == number.rounded() && abs(number) < 1e15: return Int64(number)
        default: throw HandlerTestError("\(what): '\(name)' must be a whole number")
        }
    }

    /// A table of named entries (an empty table reads as one too).
    func table(_ name: String) throws(HandlerTestError) -> [String: LuaValue] {
        switch fields[name] {
        case nil: return [:]
        case .table(let array, let entries)? where array.isEmpty: return entries
        default: throw HandlerTestError("\(what): '\(name)' must be a table of named entries")
        }
    }

    func strings(_ name: String) throws(HandlerTestError) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in try table(name) {
            guard let text = value.text ?? value.scalarText else { throw HandlerTestError("\(what): \(name).\(key) must be a string") }
            result[key] = text
        }
        return result
    }

    /// A list (an empty table reads as one too).
    func list(_ name: String) throws(HandlerTestError) -> [LuaValue] {
        switch fields[name] {
        case nil: return []
        case .table(let array, let entries)? where entries.isEmpty: return array
        default: throw HandlerTestError("\(what): '\(name)' must be a list")
        }
    }
}

/// A test file or case that cannot be run as written.
struct HandlerTestError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
