import Logging
import LuaRuntime
import WebhookVerification

/// A case's `expect` table: what must follow from its event. Only what it names is checked, with
/// two rules that always hold: a handler error fails the case unless `error` expects it, and so
/// does every error-level log line that `logs` does not expect.
struct HandlerTestExpectation: Sendable {
    /// A call the handler must make.
    struct Call: Sendable {
        var method: String?
        var url: String
        var body: [UInt8]?
        var json: JSONValue?
        var headers: [String: String]
    }

    /// A log line that must be written: its level (any when nil) and a Lua pattern its message matches.
    struct Log: Sendable {
        var level: Logger.Level?
        var message: String
    }

    /// The source's whole key-value namespace afterwards.
    var kv: [String: JSONValue]?
    /// Every outbound call, in order.
    var calls: [Call]?
    /// Lines that must be logged, in this order (others may come between).
    var logs: [Log] = []
    /// A Lua pattern the handler's error matches; nil: the handlers must not fail.
    var error: String?
    /// The first handler's return value (for `respond: sync`, the answer).
    var result: JSONValue?
    var type: String?
    var id: String?
    var handlers: [String]?
    /// A Lua pattern the refusal's reason matches: the request must be refused (a bad signature).
    var refused: String?

    static let fields: Set<String> = ["kv", "calls", "logs", "error", "result", "type", "id", "handlers", "refused"]

    init(_ value: LuaValue?, what: String) throws(HandlerTestError) {
        guard let value else { return }
        guard case .table(let array, let fields) = value, array.isEmpty else { throw HandlerTestError("\(what) must be a table of named fields") }
        if let unknown = fields.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            throw HandlerTestError("\(what): unknown field '\(unknown)'\(Suggestion.phrase(unknown, among: Self.fields))")
        }
        let reader = FieldReader(fields: fields, what: what)
        if fields["kv"] != nil {
            var kv: [String: JSONValue] = [:]
            for (key, value) in try reader.table("kv") {
                kv[key] = try Self.document(value, what: "\(what).kv \(key)")
            }
            self.kv = kv
        }
        if fields["calls"] != nil {
            calls = try reader.list("calls").enumerated().map { (offset, value) throws(HandlerTestError) in
                try Self.call(value, what: "\(what).calls[\(offset + 1)]")
            }
        }
        logs = try reader.list("logs").enumerated().map { (offset, value) throws(HandlerTestError) in
            let place = "\(what).logs[\(offset + 1)]"
            guard case .table(_, let entries) = value else { throw HandlerTestError("\(place) must be a table such as { level = \"info\", message = \"sent\" }") }
            let entry = FieldReader(fields: entries, what: place)
            guard let message = try entry.string("message") else { throw HandlerTestError("\(place): 'message' (a Lua pattern) is required") }
            var level: Logger.Level?
            if let name = try entry.string("level") {
                guard let known = LogAPI.levels.first(where: { $0.name == name })?.level else {
                    throw HandlerTestError("\(place): 'level' must be debug, info, warn or error")
                }
                level = known
            }
            return Log(level: level, message: message)
        }
        error = try reader.string("error")
        if let value = fields["result"] { result = try Self.document(value, what: "\(what).result") }
        type = try reader.string("type")
        id = try reader.string("id")
        if fields["handlers"] != nil {
            handlers = try reader.list("handlers").map { (value) throws(HandlerTestError) in
                guard let text = value.text else { throw HandlerTestError("\(what).handlers must list handler paths") }
                return text
            }
        }
        refused = try reader.string("refused")
    }

    private static func document(_ value: LuaValue, what: String) throws(HandlerTestError) -> JSONValue {
        guard let document = JSONText.parse(try JSONText.encode(value, what: what)) else { throw HandlerTestError("\(what): not a JSON value") }
        return document
    }

    private static func call(_ value: LuaValue, what: String) throws(HandlerTestError) -> Call {
        guard case .table(_, let fields) = value else { throw HandlerTestError("\(what) must be a table such as { method = \"POST\", url = \"…\" }") }
        let known: Set<String> = ["method", "url", "body", "json", "headers"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw HandlerTestError("\(what): unknown field '\(unknown)'\(Suggestion.phrase(unknown, among: known))")
        }
        let reader = FieldReader(fields: fields, what: what)
        guard let url = try reader.string("url") else { throw HandlerTestError("\(what): 'url' is required") }
        return Call(
            method: try reader.string("method")?.uppercased(), url: url, body: try reader.string("body").map { Array($0.utf8) },
            json: try fields["json"].map { (value) throws(HandlerTestError) in try document(value, what: "\(what).json") },
            headers: try reader.strings("headers"))
    }
}
