import Foundation
import Logging
import Synchronization

/// One JSON object per line on standard error: what log collectors want when moonhook does not run
/// on a terminal. Keys: `ts`, `level`, `msg`, `logger`, then the metadata's dotted keys.
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    private static let output = Mutex(())

    init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        var fields: [String: String] = [:]
        for (key, value) in metadata { fields[key] = "\(value)" }
        for (key, value) in explicit ?? [:] { fields[key] = "\(value)" }
        fields["ts"] = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        fields["level"] = level.rawValue
        fields["msg"] = message.description
        fields["logger"] = label
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        Self.output.withLock { _ in
            FileHandle.standardError.write(data + Data("\n".utf8))
        }
    }
}

enum LogSetup {
    /// Text lines on a terminal, JSON lines otherwise. Called once, by the executable only.
    static func bootstrap(level: String) {
        let level = Logger.Level(rawValue: level) ?? .info
        let terminal = isatty(STDERR_FILENO) != 0
        LoggingSystem.bootstrap { label in
            if terminal {
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            return JSONLogHandler(label: label, level: level)
        }
    }
}
