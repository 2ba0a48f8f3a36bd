import Foundation
import MoonhookStore
import WebhookVerification

/// A source's dead-letter alert: when one of its pairs is dead-lettered and the source has a
/// `_dead.lua`, a delivery of type `moonhook.dead` to that handler alone, stored in the same
/// transaction as the dead outcome. Its id comes from the pair's death (delivery, handler,
/// attempt), so one death gives one alert, whatever crashes around it.
///
/// Its body:
/// ```json
/// {"delivery": {"seq": 42, "id": "evt_1", "type": "task.done", "source": "induced",
///   "received_at": "2026-12-06T09:00:00.000Z"}, "handler": "induced/task.done.lua",
///   "attempts": 5, "error": "induced/task.done.lua:7: upstream 500", "dead_at": "2026-12-06T09:12:00.000Z"}
/// ```
enum DeadLetterAlert {
    /// The event type of alerts; reserved: a sender cannot post it.
    static let type = "moonhook.dead"
    /// The handler file name (without `.lua`) that takes alerts; it never runs for other types.
    static let handlerName = "_dead"
    /// How alerts' ids start; reserved: a sender cannot use such an id.
    static let idPrefix = "moonhook.dead:"

    /// The alert for `pair` dying with `error`, or nil when no alert is due: the source has no
    /// `_dead.lua`, or the pair is itself an alert's (a failing `_dead.lua` is not alerted on).
    static func delivery(for pair: ClaimedPair, error: String, source: Source?, at now: Date = Date()) -> InboxDelivery? {
        guard pair.delivery.type != type, let source, let handler = source.handlers(for: type).first else { return nil }
        let original = pair.delivery
        var body: [UInt8] = []
        body += Array(#"{"delivery":{"seq":"#.utf8) + Array(String(original.seq).utf8)
        body += Array(#","id":"#.utf8)
        CanonicalJSON.writeString(original.id, to: &body)
        body += Array(#","type":"#.utf8)
        CanonicalJSON.writeString(original.type, to: &body)
        body += Array(#","source":"#.utf8)
        CanonicalJSON.writeString(original.source, to: &body)
        body += Array(#","received_at":"#.utf8)
        CanonicalJSON.writeString(TimeAPI.iso8601(original.receivedAt), to: &body)
        body += Array(#"},"handler":"#.utf8)
        CanonicalJSON.writeString(pair.handler, to: &body)
        body += Array(#","attempts":"#.utf8) + Array(String(pair.attempt).utf8)
        body += Array(#","error":"#.utf8)
        CanonicalJSON.writeString(error, to: &body)
        body += Array(#","dead_at":"#.utf8)
        CanonicalJSON.writeString(TimeAPI.iso8601(now), to: &body)
        body += Array("}".utf8)
        return InboxDelivery(
            source: original.source, id: "\(idPrefix)\(original.seq):\(pair.handler):\(pair.attempt)", type: type, receivedAt: now,
            headers: ["content-type": "application/json"], body: body, handlers: [handler.path])
    }
}
