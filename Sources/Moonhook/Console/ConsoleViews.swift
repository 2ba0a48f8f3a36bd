import Foundation
import MoonhookStore

/// What the console's templates show, built from the inbox and the sources: plain dictionaries
/// of text, so that every value a sender or a handler wrote reaches the page through the
/// template's HTML escaping.
enum ConsoleViews {
    /// Header names whose values are credentials: shown shortened.
    static func isSecret(header name: String) -> Bool {
        let lower = name.lowercased()
        return ["signature", "token", "authorization", "secret", "api-key", "apikey", "cookie"].contains { lower.contains($0) }
    }

    /// A credential header's value: its first 8 characters, then how long it was.
    static func shortened(_ value: String) -> String {
        value.count <= 8 ? value : "\(value.prefix(8))… (\(value.count) characters)"
    }

    static func time(_ date: Date) -> String { TimeAPI.iso8601(date) }

    static func duration(_ seconds: TimeInterval) -> String {
        seconds < 1 ? "\(Int((seconds * 1000).rounded())) ms" : String(format: "%.2f s", seconds)
    }

    static func age(_ seconds: TimeInterval) -> String {
        let whole = Int(seconds)
        if whole < 120 { return "\(whole) s" }
        if whole < 7200 { return "\(whole / 60) min" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    /// The body as text: JSON pretty-printed, anything else as received (bytes that are not UTF-8
    /// replaced).
    static func body(_ bytes: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]),
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        {
            return String(decoding: data, as: UTF8.self)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func delivery(_ detail: DeliveryDetail, handlersFolder: URL) -> [String: Any] {
        let delivery = detail.delivery
        let pairs = detail.pairs.map { pair -> [String: Any] in
            var entry: [String: Any] = ["handler": pair.handler, "status": pair.status.rawValue, "attempts": pair.attempts]
            if let due = pair.dueAt, pair.status == .retry || pair.status == .pending { entry["due"] = time(due) }
            if let error = pair.lastError { entry["last_error"] = error }
            if let key = pair.orderingKey { entry["serial_key"] = key }
            if let seq = pair.waitingOn { entry["waiting_on"] = seq }
            entry["runs"] = detail.attempts.filter { $0.handler == pair.handler }.map { attempt -> [String: Any] in
                var run: [String: Any] = [
                    "attempt": attempt.attempt, "outcome": attempt.outcome.rawValue, "started": time(attempt.startedAt),
                    "duration": duration(attempt.finishedAt.timeIntervalSince(attempt.startedAt)),
                    "has_logs": !attempt.logs.isEmpty,
                    "logs": attempt.logs.map { line -> [String: Any] in
                        ["level": line.level.rawValue, "message": line.message, "fields": line.fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }]
                    },
                ]
                if let error = attempt.error {
                    run["error"] = error
                    // The line the error points at, as the file reads now.
                    let excerpt = SourceExcerpt.lines(for: error, handlersFolder: handlersFolder)
                    if !excerpt.isEmpty { run["excerpt"] = excerpt.joined(separator: "\n") }
                }
                return run
            }
            return entry
        }
        return [
            "title": "Delivery \(delivery.seq)", "nav_deliveries": true, "seq": delivery.seq, "source": delivery.source, "type": delivery.type, "id": delivery.id,
            "received": time(delivery.receivedAt), "pairs": pairs,
            "headers": delivery.headers.sorted { $0.key < $1.key }.map { name, value -> [String: Any] in
                ["name": name, "value": isSecret(header: name) ? shortened(value) : value]
            },
            "body": body(delivery.body),
        ]
    }

    static func row(_ summary: DeliverySummary) -> [String: Any] {
        [
            "seq": summary.seq, "received": time(summary.receivedAt), "source": summary.source, "type": summary.type, "id": summary.id,
            "states": PairStatus.allCases.compactMap { status in summary.statuses[status].map { ["name": status.rawValue, "count": $0] } },
        ]
    }

    /// Deliveries received per minute over the hour before `now` (the newest minute on the right),
    /// and those of them with a handler in retry or dead, as bars of a 600×120 chart (a line at the foot for its labels).
    static func hour(_ deliveries: [DeliverySummary], now: Date) -> (bars: [[String: Any]], received: Int, failing: Int) {
        var received = [Int](repeating: 0, count: 60)
        var failing = [Int](repeating: 0, count: 60)
        for delivery in deliveries {
            let minutesAgo = Int(now.timeIntervalSince(delivery.receivedAt) / 60)
            guard (0..<60).contains(minutesAgo) else { continue }
            received[59 - minutesAgo] += 1
            if (delivery.statuses[.retry] ?? 0) + (delivery.statuses[.dead] ?? 0) > 0 { failing[59 - minutesAgo] += 1 }
        }
        let top = max(1, received.max() ?? 1)
        let bars = (0..<60).map { index -> [String: Any] in
            let height = received[index] * 105 / top
            var bar: [String: Any] = [
                "x": index * 10, "y": 112 - height, "height": height, "count": received[index], "failing": failing[index],
                "label": "\(59 - index) min ago",
            ]
            let failingHeight = failing[index] * 105 / top
            if failingHeight > 0 {
                bar["failing_height"] = failingHeight
                bar["failing_y"] = 112 - failingHeight
            }
            return bar
        }
        return (bars, received.reduce(0, +), failing.reduce(0, +))
    }

    static func refusal(_ refusal: Refusal) -> [String: Any] {
        [
            "time": time(refusal.time), "source": refusal.source, "status": refusal.status, "reason": refusal.reason.rawValue, "message": refusal.message,
            "from": refusal.remoteAddress ?? "", "body": refusal.bodyPrefix,
        ]
    }

    static func source(_ report: SourceReport) -> [String: Any] {
        [
            "name": report.name, "serving": report.serving, "scheme": report.scheme ?? "-", "version": report.version.map(String.init) ?? "-",
            "loaded": report.loadedAt.map(time) ?? "never", "problems": report.problems, "has_problems": !report.problems.isEmpty,
            "handlers": report.handlers.map { ["path": $0.path, "on": $0.on] as [String: Any] },
        ]
    }
}
