import Foundation
import Logging
import MoonhookStore
import WebhookVerification

/// One thing that happened on this instance, as the live stream (`GET /admin/stream`, the
/// console's Live page, `moonhook tail`) shows it.
public struct LiveEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A delivery was accepted and stored.
        case delivery
        /// A handler's attempt ended.
        case attempt
        /// A handler logged a line (after the log caps: what the log got, the stream gets).
        case log
    }

    public var kind: Kind
    public var time: Date
    public var source: String
    public var deliveryID: String
    public var type: String?
    /// The inbox number of the delivery, when known.
    public var seq: Int64?
    /// The handler's path (attempts and log lines).
    public var handler: String?
    /// A log line's level; an attempt that failed is `error`, one that succeeded `info`.
    public var level: Logger.Level?
    public var message: String?
    public var fields: [String: String] = [:]
    /// A delivery's handlers (for the handler filter; its message names them).
    public var handlers: [String] = []
    /// An attempt's outcome (`done`, `retry`, `dead`) and how long it ran.
    public var outcome: String?
    public var durationMilliseconds: Int64?

    public init(kind: Kind, time: Date = Date(), source: String, deliveryID: String) {
        self.kind = kind
        self.time = time
        self.source = source
        self.deliveryID = deliveryID
    }

    /// The event as server-sent events write it: its `event:` line and one `data:` line of JSON,
    /// then the blank line that ends it. Made once per event, whatever the number of readers.
    public var frame: [UInt8] {
        var out = Array("event: \(kind.rawValue)\ndata: {".utf8)
        var first = true
        func key(_ name: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            CanonicalJSON.writeString(name, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        func field(_ name: String, _ value: String?) {
            guard let value else { return }
            key(name)
            CanonicalJSON.writeString(value, to: &out)
        }
        func field(_ name: String, _ value: Int64?) {
            guard let value else { return }
            key(name)
            out += Array(String(value).utf8)
        }
        field("kind", kind.rawValue)
        field("time", TimeAPI.iso8601(time))
        field("source", source)
        field("delivery_id", deliveryID)
        field("type", type)
        field("seq", seq)
        field("handler", handler)
        field("level", level?.rawValue)
        field("message", message)
        if !fields.isEmpty {
            key("fields")
            out.append(UInt8(ascii: "{"))
            for (index, (name, value)) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                CanonicalJSON.writeString(name, to: &out)
                out.append(UInt8(ascii: ":"))
                CanonicalJSON.writeString(value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        field("outcome", outcome)
        field("duration_ms", durationMilliseconds)
        out += Array("}\n\n".utf8)
        return out
    }
}

extension LiveEvent {
    /// A delivery stored as inbox number `seq`.
    static func accepted(_ delivery: InboxDelivery, seq: Int64) -> LiveEvent {
        var event = LiveEvent(kind: .delivery, time: delivery.receivedAt, source: delivery.source, deliveryID: delivery.id)
        event.type = delivery.type
        event.seq = seq
        event.level = .info
        event.handlers = delivery.handlers
        event.message = delivery.handlers.isEmpty ? "accepted, no handler for its type" : "accepted for \(delivery.handlers.joined(separator: ", "))"
        return event
    }

    /// An attempt of `pair` that ended with `outcome` after `duration`.
    static func attempt(_ pair: ClaimedPair, outcome: PairOutcome, duration: Duration) -> LiveEvent {
        var event = LiveEvent(kind: .attempt, source: pair.delivery.source, deliveryID: pair.delivery.id)
        event.type = pair.delivery.type
        event.seq = pair.delivery.seq
        event.handler = pair.handler
        event.outcome = outcome.status.rawValue
        event.durationMilliseconds = duration.totalMilliseconds
        event.level = outcome.error == nil ? .info : .error
        event.message = outcome.error.map { "attempt \(pair.attempt) failed: \($0)" } ?? "attempt \(pair.attempt) succeeded"
        return event
    }

    /// A line a handler logged while running for the delivery `context` belongs to.
    static func log(context: HandlerContext, handler: String, level: Logger.Level, message: String, fields: [String: String]) -> LiveEvent {
        let deliveryID = context.logger[metadataKey: "delivery.id"].map { "\($0)" } ?? ""
        var event = LiveEvent(kind: .log, source: context.source, deliveryID: deliveryID)
        event.type = context.logger[metadataKey: "event.type"].map { "\($0)" }
        event.handler = handler
        event.level = level
        event.message = message
        event.fields = fields
        return event
    }
}
