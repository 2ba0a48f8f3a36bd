import Foundation
import MoonhookStore

/// The inbox as operators see it: the JSON of `/admin/deliveries` and `moonhook deliveries`, and
/// the parsing of their filters, in one place so that both say the same.
public enum DeliveryReport {
    /// A `--since` or `since=` value: an ISO 8601 time, or a duration back from now (`2h`, `7d`).
    public static func time(_ text: String, now: Date = Date()) -> Date? {
        if let duration = DurationText.parse(text) { return now.addingTimeInterval(-Double(duration.totalMilliseconds) / 1000) }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }

    /// A `--status` value.
    public static func status(_ text: String) -> TaskStatus? { TaskStatus(rawValue: text) }

    public static func summary(_ summary: DeliverySummary) -> [String: Any] {
        [
            "seq": summary.seq, "source": summary.source, "id": summary.id, "type": summary.type,
            "received_at": TimeAPI.iso8601(summary.receivedAt),
            "status": Dictionary(uniqueKeysWithValues: summary.statuses.map { ($0.key.rawValue, $0.value) }),
        ]
    }

    public static func detail(_ detail: DeliveryDetail) -> [String: Any] {
        let delivery = detail.delivery
        var body: Any = String(decoding: delivery.body, as: UTF8.self)
        if let object = try? JSONSerialization.jsonObject(with: Data(delivery.body), options: [.fragmentsAllowed]) { body = object }
        return [
            "seq": delivery.seq, "source": delivery.source, "id": delivery.id, "type": delivery.type,
            "received_at": TimeAPI.iso8601(delivery.receivedAt), "headers": delivery.headers, "body": body,
            "handlers": detail.tasks.map { task -> [String: Any] in
                var entry: [String: Any] = ["handler": task.handler, "status": task.status.rawValue, "attempts": task.attempts]
                if let due = task.dueAt { entry["due_at"] = TimeAPI.iso8601(due) }
                if let error = task.lastError { entry["last_error"] = error }
                return entry
            },
            "attempts": detail.attempts.map { attempt -> [String: Any] in
                var entry: [String: Any] = [
                    "handler": attempt.handler, "attempt": attempt.attempt, "outcome": attempt.outcome,
                    "started_at": TimeAPI.iso8601(attempt.startedAt), "finished_at": TimeAPI.iso8601(attempt.finishedAt),
                    "logs": attempt.logs.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) },
                ]
                if let error = attempt.error { entry["error"] = error }
                return entry
            },
        ]
    }

    /// `object` as JSON text.
    public static func text(_ object: Any, pretty: Bool = false) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: options) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The seq a `show`/`replay` argument names: an inbox number, or a sender's delivery id that
    /// only one delivery has.
    public static func resolve(_ argument: String, in inbox: any DeliveryInbox) async throws -> Int64 {
        if let seq = Int64(argument) { return seq }
        let found = try await inbox.find(id: argument)
        guard let first = found.first else { throw DeliveryLookupError(message: "no delivery with id '\(argument)'") }
        guard found.count == 1 else {
            throw DeliveryLookupError(message: "id '\(argument)' names \(found.count) deliveries (\(found.map(String.init).joined(separator: ", "))); give the number")
        }
        return first
    }
}

/// A delivery that `show` or `replay` cannot find.
public struct DeliveryLookupError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
