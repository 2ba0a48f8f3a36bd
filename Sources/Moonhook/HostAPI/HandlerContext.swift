import Logging
import LuaRuntime
import Synchronization

/// What host functions know about the invocation that called them: the logger carrying the
/// invocation's metadata (`source`, `event.type`, `delivery.id`, `handler.path`) and the log lines
/// it wrote, kept for the invocation's record.
public final class HandlerContext: Sendable {
    public let source: String
    public let logger: Logger
    private let lines = Mutex<[LogLine]>([])

    /// One line a handler logged.
    public struct LogLine: Sendable, Equatable {
        public var level: Logger.Level
        public var message: String
        public var fields: [String: String]
    }

    /// Lines kept per invocation; later ones are only logged, not kept.
    public static let keptLines = 200

    public init(source: String, logger: Logger) {
        self.source = source
        self.logger = logger
    }

    public var logLines: [LogLine] { lines.withLock { $0 } }

    func keep(_ line: LogLine) {
        lines.withLock { if $0.count < Self.keptLines { $0.append(line) } }
    }
}

extension LuaCall {
    /// The host context of the running invocation, if the invoker gave one.
    var handlerContext: HandlerContext? { invocation?.context as? HandlerContext }
}
