import Logging
import LuaRuntime
import Synchronization

/// What host functions know about the invocation that called them: the logger carrying the
/// invocation's metadata (`source`, `event.type`, `delivery.id`, `handler.path`) and the log lines
/// it wrote, kept for the invocation's record.
public final class HandlerContext: Sendable {
    public let source: String
    public let logger: Logger
    /// Secret values that must never reach a log: replaced by `[redacted]` in every line.
    public let redactions: [String]
    private let lines = Mutex<[LogLine]>([])
    private let outboundCalls = Mutex(0)
    private let loggedBytes = Mutex(0)

    /// One line a handler logged.
    public struct LogLine: Sendable, Equatable {
        public var level: Logger.Level
        public var message: String
        public var fields: [String: String]
    }

    /// Lines kept per invocation; later ones are only logged, not kept.
    public static let keptLines = 200

    public init(source: String, logger: Logger, redactions: [String] = []) {
        self.source = source
        self.logger = logger
        self.redactions = redactions.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
    }

    /// `text` with every secret value replaced.
    func redact(_ text: String) -> String {
        redactions.reduce(text) { $0.replacingOccurrences(of: $1, with: "[redacted]") }
    }

    public var logLines: [LogLine] { lines.withLock { $0 } }

    /// Counts one outbound call; false once `limit` calls were made.
    func countOutboundCall(limit: Int) -> Bool {
        outboundCalls.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    /// What the per-invocation log cap says of a line of `bytes`.
    enum LogAdmission { case admit, refuseFirst, refuse }

    /// Counts a line of `bytes` against the invocation's `limit`; the first line past it is
    /// `refuseFirst` (the caller says so once), later ones `refuse`.
    func admitLog(bytes: Int, limit: Int) -> LogAdmission {
        loggedBytes.withLock { logged in
            if logged > limit { return .refuse }
            if logged + bytes > limit {
                logged = limit + 1
                return .refuseFirst
            }
            logged += bytes
            return .admit
        }
    }

    func keep(_ line: LogLine) {
        lines.withLock { if $0.count < Self.keptLines { $0.append(line) } }
    }
}

extension LuaCall {
    /// The host context of the running invocation, if the invoker gave one.
    var handlerContext: HandlerContext? { invocation?.context as? HandlerContext }
}
