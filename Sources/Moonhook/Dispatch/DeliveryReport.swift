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

    /// The filter an operator wrote as flags or query parameters (`prefix` is how the caller's
    /// parameters are written, for the error): `status`, `source`, `type`, `id`, `since` and
    /// `until` (each an ISO 8601 time or a duration back from now), `limit`, and `cursor` (the
    /// `next` of the previous page).
    public static func filter(
        status: String?, source: String?, type: String? = nil, id: String? = nil, since: String?, until: String? = nil, limit: String?,
        cursor: String? = nil, defaultStatus: PairStatus? = nil, prefix: String = ""
    ) throws(DeliveryQueryError) -> DeliveryFilter {
        var filter = DeliveryFilter(status: defaultStatus, source: source, type: type, id: id)
        if let status {
            guard let value = PairStatus(rawValue: status) else {
                throw DeliveryQueryError(message: "\(prefix)status must be one of \(PairStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = value
        }
        if let since {
            guard let date = time(since) else { throw DeliveryQueryError(message: "\(prefix)since must be a duration (2h) or an ISO 8601 time") }
            filter.since = date
        }
        if let until {
            guard let date = time(until) else { throw DeliveryQueryError(message: "\(prefix)until must be a duration (2h) or an ISO 8601 time") }
            filter.until = date
        }
        if let limit {
            guard let count = Int(limit), count > 0 else { throw DeliveryQueryError(message: "\(prefix)limit must be a positive whole number") }
            filter.limit = count
        }
        if let cursor {
            guard let value = Int64(cursor), value > 0 else { throw DeliveryQueryError(message: "\(prefix)cursor must be the next of a previous page") }
            filter.cursor = value
        }
        return filter
    }

    /// A page as the admin API and `deliveries list --json` give it.
    public static func page(_ page: DeliveryPage) -> [String: Any] {
        ["deliveries": page.deliveries.map(summary), "next": page.next.map { $0 as Any } ?? NSNull()]
    }

    public static func summary(_ summary: DeliverySummary) -> [String: Any] {
        [
            "seq": summary.seq, "source": summary.source, "id": summary.id, "type": summary.type,
            "received_at": TimeAPI.iso8601(summary.receivedAt),
            "status": Dictionary(uniqueKeysWithValues: summary.statuses.map { ($0.key.rawValue, $0.value) }),
        ]
    }

    /// A delivery with its pairs and attempts. With `handlersFolder`, a failed attempt's error
    /// comes with `excerpt`: the line of the handler it points at, as the file reads now.
    public static func detail(_ detail: DeliveryDetail, handlersFolder: URL? = nil) -> [String: Any] {
        let delivery = detail.delivery
        var body: Any = String(decoding: delivery.body, as: UTF8.self)
        if let object = try? JSONSerialization.jsonObject(with: Data(delivery.body), options: [.fragmentsAllowed]) { body = object }
        return [
            "seq": delivery.seq, "source": delivery.source, "id": delivery.id, "type": delivery.type,
            "received_at": TimeAPI.iso8601(delivery.receivedAt), "headers": delivery.headers, "body": body,
            "handlers": detail.pairs.map { pair -> [String: Any] in
                var entry: [String: Any] = ["handler": pair.handler, "status": pair.status.rawValue, "attempts": pair.attempts]
                if let due = pair.dueAt { entry["due_at"] = TimeAPI.iso8601(due) }
                if let error = pair.lastError { entry["last_error"] = error }
                if let key = pair.orderingKey { entry["serial_key"] = key }
                if let seq = pair.waitingOn { entry["waiting_on"] = seq }
                return entry
            },
            "attempts": detail.attempts.map { attempt -> [String: Any] in
                var entry: [String: Any] = [
                    "handler": attempt.handler, "attempt": attempt.attempt, "outcome": attempt.outcome.rawValue,
                    "started_at": TimeAPI.iso8601(attempt.startedAt), "finished_at": TimeAPI.iso8601(attempt.finishedAt),
                    "logs": attempt.logs.map { line -> [String: Any] in
                        var entry: [String: Any] = ["level": line.level.rawValue, "message": line.message]
                        if !line.fields.isEmpty { entry["fields"] = line.fields }
                        return entry
                    },
                ]
                if let error = attempt.error {
                    entry["error"] = error
                    if let handlersFolder, case let excerpt = SourceExcerpt.lines(for: error, handlersFolder: handlersFolder), !excerpt.isEmpty { entry["excerpt"] = excerpt }
                }
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
        let found = try await inbox.deliveries(DeliveryFilter(id: argument, limit: 10)).deliveries.map(\.seq)
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
