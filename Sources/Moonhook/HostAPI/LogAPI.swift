import Logging
import LuaRuntime
import Synchronization

/// `log.debug/info/warn/error(message, fields)`: handler logs into swift-log, with the invocation's
/// metadata and the handler's path, bounded three ways so a loop cannot flood the log: lines per
/// second per handler, bytes per line, bytes per invocation.
public enum LogAPI {
    /// - Parameters:
    ///   - logger: used when an invocation carries no `HandlerContext` (e.g. while a file loads).
    ///   - linesPerSecond: sustained rate per handler; bursts of twice that pass.
    ///   - lineBytes: one line's message plus fields, after redaction; longer lines are cut.
    ///   - bytesPerInvocation: what one invocation may log in all; later lines are dropped.
    ///   - live: where admitted lines are also shown as they are written.
    public static func library(
        logger: Logger, linesPerSecond: Int, lineBytes: Int = 8192, bytesPerInvocation: Int = 65536, live: LiveFeed? = nil
    ) -> LuaLibrary {
        let limiter = LogRateLimiter(linesPerSecond: linesPerSecond)
        let cap = LogLineCap(limit: lineBytes)
        var log = LuaLibrary(name: "log")
        for (name, level) in levels {
            log.function(name, "fun(message: any, fields?: table<string, any>)", "Writes one \(name) line, with fields, tagged with the handler and the delivery") { call in
                let context = call.handlerContext
                let text = try call.string(1)
                var message = context?.redact(text) ?? text
                var fields: [String: String] = [:]
                if !call.isNil(2) {
                    guard case .table(let array, let named) = try call.value(2) else {
                        throw LuaHostError("bad argument #2 to '\(call.functionName)' (table expected)")
                    }
                    for (index, value) in array.enumerated() { fields[String(index + 1)] = context?.redact(render(value)) ?? render(value) }
                    for (key, value) in named { fields[key] = context?.redact(render(value)) ?? render(value) }
                }
                (message, fields) = cap.cut(message: message, fields: fields)
                let path = call.invocation?.handlerPath ?? "?"
                let target = context?.logger ?? logger
                switch context?.admitLog(bytes: LogLineCap.size(message: message, fields: fields), limit: bytesPerInvocation) ?? .admit {
                case .admit: break
                case .refuseFirst:
                    // Said once, in the log and with the attempt's lines, so neither just stops.
                    let warning = "handler log lines dropped: this invocation logged \(bytesPerInvocation) bytes, the limit"
                    target.warning("\(warning)", metadata: ["handler.path": "\(path)"])
                    context?.keep(HandlerContext.LogLine(level: .warning, message: warning, fields: [:]))
                    if let live, let context { live.publish(LiveEvent.log(context: context, handler: path, level: .warning, message: warning, fields: [:])) }
                    return .values(0)
                case .refuse:
                    return .values(0)
                }
                switch limiter.admit(path) {
                case .drop:
                    return .values(0)
                case .admit(let suppressed):
                    if suppressed > 0 {
                        target.warning("handler log lines suppressed", metadata: ["handler.path": "\(path)", "suppressed": "\(suppressed)"])
                    }
                }
                var metadata: Logger.Metadata = ["handler.path": "\(path)"]
                for (key, value) in fields { metadata[key] = "\(value)" }
                target.log(level: level, "\(message)", metadata: metadata)
                context?.keep(HandlerContext.LogLine(level: level, message: message, fields: fields))
                if let live, let context {
                    live.publish(LiveEvent.log(context: context, handler: path, level: level, message: message, fields: fields))
                }
                return .values(0)
            }
        }
        return log
    }

    /// A number or boolean as text; nil for other values.
    /// The levels handlers log at, by their function's name.
    static let levels: [(name: String, level: Logger.Level)] = [("debug", .debug), ("info", .info), ("warn", .warning), ("error", .error)]

    /// The name handlers use for `level` (`warn` for `.warning`).
    static func levelName(_ level: Logger.Level) -> String {
        levels.first { $0.level == level }?.name ?? level.rawValue
    }

    static func renderScalar(_ value: LuaValue) -> String? {
        switch value {
        case .integer, .number, .boolean: render(value)
        default: nil
        }
    }

    /// A field value as one line of text: strings as they are, tables as JSON-ish text.
    public static func render(_ value: LuaValue) -> String {
        switch value {
        case .nil, .null: "null"
        case .boolean(let flag): flag ? "true" : "false"
        case .integer(let number): String(number)
        case .number(let number): String(number)
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .json(let bytes): String(decoding: bytes, as: UTF8.self)
        case .table(let array, let fields):
            "{" + (array.map(render) + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\(render($0.value))" }).joined(separator: ",") + "}"
        }
    }
}

/// A token bucket per handler path; counts what it drops so the next admitted line can say so.
final class LogRateLimiter: Sendable {
    enum Decision { case admit(suppressed: Int), drop }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        var suppressed: Int
    }

    private let rate: Double
    private let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    init(linesPerSecond: Int) {
        rate = Double(max(1, linesPerSecond))
        burst = rate * 2
    }

    func admit(_ key: String) -> Decision {
        let now = ContinuousClock.now
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now, suppressed: 0)
            let elapsed = Double((now - bucket.updated).components.attoseconds) / 1e18 + Double((now - bucket.updated).components.seconds)
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.updated = now
            let decision: Decision
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                decision = .admit(suppressed: bucket.suppressed)
                bucket.suppressed = 0
            } else {
                bucket.suppressed += 1
                decision = .drop
            }
            buckets[key] = bucket
            return decision
        }
    }
}
