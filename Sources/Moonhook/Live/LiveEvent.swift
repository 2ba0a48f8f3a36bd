import Foundation
import Logging
import MoonhookStore

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
    /// An attempt's outcome (`done`, `retry`, `dead`) and how long it ran.
    public var outcome: String?
    public var durationMilliseconds: Int64?

    public init(kind: Kind, time: Date = Date(), source: String, deliveryID: String) {
        self.kind = kind
        self.time = time
        self.source = source
        self.deliveryID = deliveryID
    }

    /// The JSON object of one `data:` line.
    public var object: [String: Any] {
        var object: [String: Any] = ["kind": kind.rawValue, "time": TimeAPI.iso8601(time), "source": source, "delivery_id": deliveryID]
        if let type { object["type"] = type }
        if let seq { object["seq"] = seq }
        if let handler { object["handler"] = handler }
        if let level { object["level"] = level.rawValue }
        if let message { object["message"] = message }
        if !fields.isEmpty { object["fields"] = fields }
        if let outcome { object["outcome"] = outcome }
        if let durationMilliseconds { object["duration_ms"] = durationMilliseconds }
        return object
    }
}

extension LiveEvent {
    /// A delivery stored as inbox number `seq`.
    static func accepted(_ delivery: InboxDelivery, seq: Int64) -> LiveEvent {
        var event = LiveEvent(kind: .delivery, time: delivery.receivedAt, source: delivery.source, deliveryID: delivery.id)
        event.type = delivery.type
        event.seq = seq
        event.level = .info
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
