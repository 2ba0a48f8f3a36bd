import Foundation

/// How `moonhook tail` prints one event of the live stream on a terminal: its time, source,
/// handler (or event type), level and message on one line, the level coloured when asked.
public enum LiveEventText {
    /// One line for the event named `event` (`delivery`, `attempt`, `log`, `dropped`) whose
    /// `data:` was `object`.
    public static func line(event: String, object: [String: Any], colour: Bool) -> String {
        if event == "dropped" {
            let count = object["dropped"] as? Int ?? 0
            return paint("-- \(count) event(s) dropped: this reader fell behind", code: "33", colour)
        }
        let time = (object["time"] as? String).map { String($0.dropFirst(11).prefix(12)) } ?? "-"
        let source = object["source"] as? String ?? "-"
        let who = object["handler"] as? String ?? (object["type"] as? String).map { "\(source)/\($0)" } ?? source
        let level = object["level"] as? String ?? "info"
        var message = object["message"] as? String ?? ""
        if let fields = object["fields"] as? [String: Any] {
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { message += " \(key)=\(value)" }
        }
        if let milliseconds = object["duration_ms"] as? Int { message += " (\(milliseconds) ms)" }
        if let id = object["delivery_id"] as? String, !id.isEmpty { message += " [\(id)]" }
        let tag = paint(pad(level == "warning" ? "warn" : level, 5), code: code(level), colour)
        return "\(printable(time)) \(pad(event, 8)) \(tag) \(printable(who)): \(printable(message))"
    }

    /// `text` with control characters (escape sequences a sender or a handler wrote would move a
    /// terminal's cursor or recolour it) shown as `?`.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }

    private static func code(_ level: String) -> String {
        switch level {
        case "error", "critical": "31"
        case "warning": "33"
        case "debug", "trace": "2"
        default: "32"
        }
    }

    private static func paint(_ text: String, code: String, _ colour: Bool) -> String {
        colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
