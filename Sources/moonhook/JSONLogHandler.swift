import Foundation
import Logging
import Synchronization
import MoonhookStore

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
        // Built by hand, bytes into one buffer: a log line per request must cost microseconds, not
        // a JSONSerialization pass.
        var output: [UInt8] = []
        output.reserveCapacity(320)
        output.append(contentsOf: #"{"ts":""#.utf8)
        Self.appendTimestamp(to: &output)
        output.append(contentsOf: #"","level":""#.utf8)
        output.append(contentsOf: level.rawValue.utf8)
        output.append(contentsOf: #"","msg":"#.utf8)
        StoredJSON.appendString(message.description, to: &output)
        output.append(contentsOf: #","logger":"#.utf8)
        StoredJSON.appendString(label, to: &output)
        let merged = explicit.map { metadata.isEmpty ? $0 : metadata.merging($0) { $1 } } ?? metadata
        for key in merged.keys.sorted() {
            output.append(UInt8(ascii: ","))
            StoredJSON.appendString(key, to: &output)
            output.append(UInt8(ascii: ":"))
            StoredJSON.appendString(merged[key]!.description, to: &output)
        }
        output.append(contentsOf: "}\n".utf8)
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
        func digits(_ value: Int32, _ count: Int, then separator: Character) {
            var divisor: Int32 = 1
            for _ in 1..<count { divisor *= 10 }
            while divisor > 0 {
                output.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
            output.append(UInt8(ascii: separator.unicodeScalars.first!))
        }
        digits(parts.tm_year + 1900, 4, then: "-")
        digits(parts.tm_mon + 1, 2, then: "-")
        digits(parts.tm_mday, 2, then: "T")
        digits(parts.tm_hour, 2, then: ":")
        digits(parts.tm_min, 2, then: ":")
        digits(parts.tm_sec, 2, then: ".")
        digits(Int32(now.tv_nsec / 1_000_000), 3, then: "Z")
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
