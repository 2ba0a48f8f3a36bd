import Logging
import LuaRuntime
import Moonhook
import MoonhookStore
import Synchronization

/// A swift-log handler that keeps every record, so tests can read what the host logged.
final class LogRecords: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }

    func append(_ record: Record) { records.withLock { $0.append(record) } }

    func clear() { records.withLock { $0.removeAll() } }

    func logger() -> Logger {
        Logger(label: "test") { _ in CollectingLogHandler(records: self) }
    }
}

struct CollectingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        log(level: event.level, message: event.message, metadata: event.metadata, source: event.source, file: event.file, function: event.function, line: event.line)
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let merged = self.metadata.merging(metadata ?? [:]) { _, new in new }
        records.append(.init(level: level, message: message.description, metadata: merged.mapValues { "\($0)" }))
    }
}

/// Host services for tests: an in-memory store and one HTTP client for the whole test run.
enum TestServices {
    static let client = HandlerRuntime.makeHTTPClient()

    static func make(_ logger: Logger, limits: LuaLimits = LuaLimits(), store: any KeyValueStore = MemoryKeyValueStore(), outbound: OutboundPolicy = OutboundPolicy()) -> HostServices {
        HostServices(logger: logger, limits: limits, store: store, httpClient: client, outbound: outbound)
    }
}
