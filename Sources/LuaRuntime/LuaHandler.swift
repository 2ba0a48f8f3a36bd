/// A handler file loaded into a worker: its compiled function plus the options it declared.
///
/// A handler file returns either a function, or a table with a `handle` function and options:
/// ```lua
/// return { on = {"agent.task.*"}, timeout = 5, retries = 3, handle = function(event) ... end }
/// ```
public struct LuaHandler: Sendable, Hashable {
    /// Identity inside the worker that loaded it.
    let id: Int
    /// Path relative to the handlers folder; used in every error message.
    public let path: String
    public let options: LuaHandlerOptions
}

/// Options a handler table may declare next to `handle`.
public struct LuaHandlerOptions: Sendable, Hashable {
    /// Longest `timeout`, in seconds (one day).
    public static let maxTimeoutSeconds: Int64 = 86_400
    /// Longest `retry_delay`, in seconds (30 days).
    public static let maxRetryDelaySeconds: Int64 = 30 * 86_400
    /// Most `retries`.
    public static let maxRetries: Int64 = 1_000
    /// Largest `concurrency`.
    public static let maxConcurrency: Int64 = 1_000_000

    /// What a handler table may hold: `handle` and the options. Every option is declared here, so
    /// that the loader, `moonhook check` and the documentation say the same.
    public static let names = ["handle", "on", "timeout", "retries", "retry_delay", "concurrency", "serial", "serial_failure", "max_rate"]

    /// The refusal of an entry that is not an option (`key` nil: not a string key).
    public static func unknownOptionMessage(path: String, key: String?) -> String {
        let known = names.joined(separator: ", ")
        guard let key else { return "\(path): the returned table has an entry that is not named; a handler table takes \(known)" }
        return "\(path): unknown option '\(key)'\(Suggestion.phrase(key, among: names)); a handler table takes \(known)"
    }

    /// Event-type patterns (`*` matches any run of characters) this handler also runs for.
    public var on: [String] = []
    /// Wall-clock limit for one invocation, overriding the state's default.
    public var timeout: Duration?
    /// How many times a failed invocation is retried, overriding the source's retry policy.
    public var retries: Int?
    /// Delay before the first retry (later ones grow from it), overriding the source's.
    public var retryDelay: Duration?
    /// Invocations of this handler running at once, at most.
    public var concurrency: Int?
    /// Where the key is whose events run one at a time, in the order stored (`/payload/taskId`,
    /// `header:NAME`, `form:NAME`); checked by the host, which knows those places.
    public var serial: String?
    /// What a failed event of a `serial` key does to the next: holds it back (the default) or lets
    /// it run and retries after it.
    public var serialFailure: SerialFailure = .block
    /// At most this many starts per second, minute or hour (`10/s`), across every instance;
    /// checked by the host, which reads the grammar.
    public var maxRate: String?

    /// `serial_failure`.
    public enum SerialFailure: String, Sendable, Hashable {
        case block
        case skip
    }

    public init(on: [String] = [], timeout: Duration? = nil, retries: Int? = nil, retryDelay: Duration? = nil, concurrency: Int? = nil) {
        self.on = on
        self.timeout = timeout
        self.retries = retries
        self.retryDelay = retryDelay
        self.concurrency = concurrency
    }
}

/// How one invocation ended.
public struct LuaOutcome: Sendable {
    /// What the handler returned, or why it failed.
    public var result: Result<[LuaValue], LuaError>
    /// Instructions (plus charged C-side work) the invocation used.
    public var instructions: Int64

    public init(result: Result<[LuaValue], LuaError>, instructions: Int64) {
        self.result = result
        self.instructions = instructions
    }

    public var error: LuaError? {
        if case .failure(let error) = result { return error }
        return nil
    }
}
