import Foundation
import Logging

/// What an attempt did, for `deliveries show`.
public struct AttemptRecord: Sendable, Equatable {
    public var startedAt: Date
    public var finishedAt: Date
    /// The lines the handler logged (those kept: see `limits.log_bytes_per_invocation`).
    public var logs: [AttemptLogLine]

    public init(startedAt: Date, finishedAt: Date, logs: [AttemptLogLine]) {
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.logs = logs
    }
}

/// One line a handler logged during an attempt.
public struct AttemptLogLine: Sendable, Equatable, Codable {
    public var level: Logger.Level
    public var message: String
    public var fields: [String: String]

    public init(level: Logger.Level, message: String, fields: [String: String] = [:]) {
        self.level = level
        self.message = message
        self.fields = fields
    }

    /// The lines as the engines store them: a JSON array.
    static func encode(_ lines: [AttemptLogLine]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(lines)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    /// Lines stored by `encode`; none when the text is not such an array.
    static func decode(_ text: String?) -> [AttemptLogLine] {
        guard let text else { return [] }
        return (try? JSONDecoder().decode([AttemptLogLine].self, from: Data(text.utf8))) ?? []
    }
}
