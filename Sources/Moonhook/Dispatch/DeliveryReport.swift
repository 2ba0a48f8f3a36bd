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

    /// The filter an operator wrote as `status`, `source`, `since` and `limit` (flags or query
    /// parameters; `prefix` is how the caller's parameters are written, for the error).
    public static func filter(
        status: String?, source: String?, since: String?, limit: String?, defaultStatus: TaskStatus? = nil, prefix: String = ""
    ) throws(DeliveryQueryError) -> DeliveryFilter {
        var filter = DeliveryFilter(status: defaultStatus, source: source)
        if let status {
            guard let value = TaskStatus(rawValue: status) else {
                throw DeliveryQueryError(message: "\(prefix)status must be one of \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = value
        }
        if let since {
            guard let date = time(since) else { throw DeliveryQueryError(message: "\(prefix)since must be a duration (2h) or an ISO 8601 time") }
            filter.since = date
        }
        if let limit {
            guard let count = Int(limit), count > 0 else { throw DeliveryQueryError(message: "\(prefix)limit must be a positive whole number") }
            filter.limit = count
        }
        return filter
    }

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
        guard let first = found.first else { throw DeliveryQueryError(message: "no delivery with id '\(argument)'") }
        guard found.count == 1 else {
            throw DeliveryQueryError(message: "id '\(argument)' names \(found.count) deliveries (\(found.map(String.init).joined(separator: ", "))); give the number")
        }
        return first
    }
}

/// A delivery that `show` or `replay` cannot find, or a filter that cannot be read.
public struct DeliveryQueryError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
