import Foundation
import LuaRuntime

/// The `event` a handler receives: `{id, source, type, received_at, attempt, headers, body, raw}`.
///
/// `body` is the decoded JSON (decoded by the host straight onto the Lua stack) or a form's fields
/// (see `EventBody`), `raw` the exact bytes received, `headers` lower-cased.
public struct HandlerEvent: Sendable {
    public var id: String
    public var source: String
    public var type: String
    public var receivedAt: Date
    public var attempt: Int
    public var headers: [String: String]
    public var raw: [UInt8]
    /// The source's `form_json`: the form field whose JSON is the body.
    public var formJSON: String?

    public init(
        id: String, source: String, type: String, receivedAt: Date = Date(), attempt: Int = 1, headers: [String: String] = [:], raw: [UInt8],
        formJSON: String? = nil
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.receivedAt = receivedAt
        self.attempt = attempt
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        self.raw = raw
        self.formJSON = formJSON
    }

    /// The event as the single argument of a handler call.
    public var luaValue: LuaValue {
        .table(array: [], fields: [
            "id": .string(id),
            "source": .string(source),
            "type": .string(type),
            "received_at": .string(TimeAPI.iso8601(receivedAt)),
            "attempt": .integer(Int64(attempt)),
            "headers": .table(array: [], fields: headers.mapValues { .string($0) }),
            "body": EventBody.value(raw: raw, contentType: headers["content-type"], formJSON: formJSON),
            "raw": .string(raw),
        ])
    }
}
