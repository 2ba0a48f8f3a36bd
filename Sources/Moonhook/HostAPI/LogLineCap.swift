/// Cuts one handler log line to `limits.log_line_bytes`: the message first, then the fields in key
/// order while they fit, the one that does not fit cut short; the message then ends with a marker
/// saying how many bytes were dropped, within the limit. Cuts fall on UTF-8 character boundaries.
///
/// Everything that keeps handler log lines (the server log, the lines stored with an attempt,
/// `moonhook run`'s output) gets them from `log.*` after this cut, so one cap bounds them all.
struct LogLineCap {
    let limit: Int

    /// The line's size as the cap counts it: message plus every field's key and value, in bytes.
    static func size(message: String, fields: [String: String]) -> Int {
        fields.reduce(message.utf8.count) { $0 + $1.key.utf8.count + $1.value.utf8.count }
    }

    func cut(message: String, fields: [String: String]) -> (message: String, fields: [String: String]) {
        let total = Self.size(message: message, fields: fields)
        guard total > limit else { return (message, fields) }
        // The marker is part of the line: room is kept for it, with its count at its widest.
        let marker = { (dropped: Int) in " [\(dropped) bytes dropped: log lines are capped at \(limit) bytes]" }
        var room = max(0, limit - marker(total).utf8.count)
        var kept = Self.prefix(message, bytes: room)
        room -= kept.utf8.count
        var keptFields: [String: String] = [:]
        for key in fields.keys.sorted() where room > key.utf8.count {
            let value = Self.prefix(fields[key]!, bytes: room - key.utf8.count)
            keptFields[key] = value
            room -= key.utf8.count + value.utf8.count
        }
        kept += marker(total - Self.size(message: kept, fields: keptFields))
        return (kept, keptFields)
    }

    /// The longest prefix of `text` of at most `bytes` bytes that ends on a character boundary.
    static func prefix(_ text: String, bytes: Int) -> String {
        let utf8 = Array(text.utf8)
        guard utf8.count > bytes else { return text }
        var end = max(0, bytes)
        while end > 0 && utf8[end] & 0xC0 == 0x80 { end -= 1 }   // utf8[end] starts the next character
        return String(decoding: utf8[..<end], as: UTF8.self)
    }
}
