import Foundation

/// The line a handler error points at, shown under its `path:line: message` by `moonhook run`
/// and `moonhook check`: the line itself, and for a syntax error's `near 'token'` a caret under
/// the token, so that the author sees the mistake without opening the file.
public enum SourceExcerpt {
    /// The lines to print after `message` (` 12 | code`, then the carets): empty when the message
    /// names no line of a `.lua` file, or the file cannot be read.
    public static func lines(for message: String, handlersFolder: URL) -> [String] {
        guard let (path, number) = location(in: message) else { return [] }
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : handlersFolder.appending(path: path)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        let sourceLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard number >= 1, number <= sourceLines.count else { return [] }
        let line = String(sourceLines[number - 1]).replacingOccurrences(of: "\t", with: "    ").replacingOccurrences(of: "\r", with: "")
        let gutter = String(number)
        var excerpt = [" \(gutter) | \(line)"]
        if let token = nearToken(in: message), !token.isEmpty, let range = line.range(of: token) {
            let column = line.distance(from: line.startIndex, to: range.lowerBound)
            excerpt.append(" \(String(repeating: " ", count: gutter.count)) | \(String(repeating: " ", count: column))\(String(repeating: "^", count: token.count))")
        }
        return excerpt
    }

    /// The first `path.lua:LINE:` in `message`.
    static func location(in message: String) -> (path: String, line: Int)? {
        var searchStart = message.startIndex
        while let marker = message.range(of: ".lua:", range: searchStart..<message.endIndex) {
            searchStart = marker.upperBound
            let digits = message[marker.upperBound...].prefix { $0.isNumber }
            guard !digits.isEmpty, let line = Int(digits), message[marker.upperBound...].dropFirst(digits.count).first == ":" else { continue }
            let before = message[..<marker.lowerBound]
            let start = before.lastIndex { $0 == " " || $0 == "'" || $0 == "\"" || $0 == "(" }.map { before.index(after: $0) } ?? before.startIndex
            return (String(message[start..<marker.upperBound].dropLast()), line)
        }
        return nil
    }

    /// The token of Lua's `near 'token'` (the last one in the message).
    static func nearToken(in message: String) -> String? {
        guard let near = message.range(of: "near '", options: .backwards) else { return nil }
        let rest = message[near.upperBound...]
        guard let end = rest.lastIndex(of: "'") else { return nil }
        return String(rest[..<end])
    }
}
