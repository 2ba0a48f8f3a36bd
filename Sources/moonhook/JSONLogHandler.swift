import Foundation
import Logging
import Synchronization
import WebhookVerification

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

    func log(event: LogEvent) {
        write(level: event.level, message: event.message, explicit: event.metadata)
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        write(level: level, message: message, explicit: explicit)
    }

    private func write(level: Logger.Level, message: Logger.Message, explicit: Logger.Metadata?) {
        // Built by hand: a log line per request must cost microseconds, not a JSONSerialization pass.
        var output: [UInt8] = []
        output.reserveCapacity(256)
        output += Array(#"{"ts":""#.utf8)
        Self.appendTimestamp(to: &output)
        output += Array(#"","level":""#.utf8)
        output += Array(level.rawValue.utf8)
        output += Array(#"","msg":"#.utf8)
        CanonicalJSON.writeString(message.description, to: &output)
        output += Array(#","logger":"#.utf8)
        CanonicalJSON.writeString(label, to: &output)
        var merged = metadata
        if let explicit { merged.merge(explicit) { $1 } }
        for key in merged.keys.sorted() {
            output.append(UInt8(ascii: ","))
            CanonicalJSON.writeString(key, to: &output)
            output.append(UInt8(ascii: ":"))
            CanonicalJSON.writeString("\(merged[key]!)", to: &output)
        }
        output += Array("}\n".utf8)
        Self.output.withLock { _ in
            _ = output.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
    }

    /// `2026-11-23T18:47:48.123Z`, from the real-time clock.
    private static func appendTimestamp(to output: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ count: Int) {
            var text = [UInt8](repeating: UInt8(ascii: "0"), count: count)
            var rest = value
            for index in stride(from: count - 1, through: 0, by: -1) {
                text[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            output += text
        }
        digits(parts.tm_year + 1900, 4); output.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2); output.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2); output.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2); output.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2); output.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2); output.append(UInt8(ascii: "."))
        digits(Int32(now.tv_nsec / 1_000_000), 3); output.append(UInt8(ascii: "Z"))
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
