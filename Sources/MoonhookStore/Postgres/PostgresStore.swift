import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// The shared store: one PostgreSQL database that any number of `moonhook serve` processes, on any
/// number of machines, use at once. Every guarantee of the embedded store holds across them:
/// appends are committed before the 2xx and deduplicated store-wide, a pair is leased to one
/// process at a time (`FOR UPDATE SKIP LOCKED`, fenced by its attempt number), and every KV
/// operation is one atomic statement.
///
/// Every call has a deadline (`StoreOptions.timeout`): PostgresNIO waits for a pool connection
/// without limit and cancelling a task does not stop a statement, so without one a dead database
/// would hold requests for a minute. The server side is bounded too (`statement_timeout`,
/// `idle_in_transaction_session_timeout`, `lock_timeout`), so nothing a deadline abandoned keeps
/// running there.
public final class PostgresStore: Store {
    let client: PostgresClient
    let url: PostgresURL
    let logger: Logger
    let clock: StoreClock
    let timeout: Duration
    /// The client's run loop. The store owns it rather than its `ServiceGroup`: the CLI and the
    /// tests use a store outside any group, and migrations need a running client before the
    /// server's group starts.
    private let runner: Task<Void, Never>
    let appends: WriteBatcher<AppendItem, Result<AppendResult, StoreError>>
    let finishes: WriteBatcher<FinishItem, Bool>
    let keyValueWrites: WriteBatcher<KeyValueWrite, KeyValueWriteResult>
    let wakeupChannel: PostgresWakeups
    private let closed = Atomic(false)
    let metrics: StoreMetrics

    public var location: String { url.redacted }

    public var wakeups: AsyncStream<Void> { wakeupChannel.stream }

    /// Appends', outcomes' and key-value writes' batches together: each is a transaction of its own.
    public var writeStatistics: WriteStatistics {
        [appends.statistics, finishes.statistics, keyValueWrites.statistics].reduce(into: WriteStatistics()) { total, one in
            total.batches += one.batches
            total.writes += one.writes
            total.largestBatch = max(total.largestBatch, one.largestBatch)
            total.busy += one.busy
        }
    }

    private init(client: PostgresClient, url: PostgresURL, logger: Logger, options: StoreOptions, wakeups: PostgresWakeups, runner: Task<Void, Never>) {
        self.client = client
        self.wakeupChannel = wakeups
        self.url = url
        self.logger = logger
        self.clock = options.clock
        self.timeout = options.timeout
        self.runner = runner
        self.metrics = options.metrics
        // Set below, once `self` exists: the batchers' work runs statements through it.
        let connection = BatchConnection()
        self.appends = WriteBatcher(metrics: options.metrics) { items in try await connection.store!.appendBatch(items) }
        self.finishes = WriteBatcher(metrics: options.metrics) { items in try await connection.store!.finishBatch(items) }
        self.keyValueWrites = WriteBatcher(metrics: options.metrics) { items in try await connection.store!.keyValueBatch(items) }
        connection.store = self
    }

    /// Connects to the database `text` names and brings its schema up to date (once, whatever
    /// number of servers start at the same time).
    public static func open(url text: String, logger: Logger, options: StoreOptions = StoreOptions()) async throws -> PostgresStore {
        let url = try PostgresURL(text)
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls(url.tls))
        let milliseconds = max(1, options.timeout.totalMilliseconds)
        // The server gives up on a statement (or a lock) well before the caller's deadline, so a
        // statement that reached the database is over, one way or the other, by the time the
        // caller is told it failed; a transaction's few statements fit in the deadline together.
        let serverSide = max(100, milliseconds * 2 / 5)
        configuration.options.connectTimeout = options.timeout
        configuration.options.maximumConnections = 16
        configuration.options.additionalStartupParameters = [
            ("application_name", "moonhook"),
            ("statement_timeout", "\(serverSide)"),
            ("lock_timeout", "\(serverSide)"),
            ("idle_in_transaction_session_timeout", "\(milliseconds)"),
            // Not durable only to measure what durability costs, as on SQLite.
            ("synchronous_commit", options.durable ? "on" : "off"),
        ]
        // PostgresNIO says every failed connection attempt at info level: one line per retry for
        // as long as the database is down. The store's own callers say it once (readiness).
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        let wakeups = PostgresWakeups(url: url, tls: try listenerTLS(url.tls), logger: background)
        let runner = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await client.run() }
                group.addTask { await wakeups.listen() }
            }
        }
        let store = PostgresStore(client: client, url: url, logger: logger, options: options, wakeups: wakeups, runner: runner)
        do {
            // Reachable within the store timeout; then migrations get a minute (another instance
            // may be applying them, or a step may take long on a big table).
            try await store.run("connecting", "SELECT 1")
            try await store.withDeadline("migrating the schema", timeout: PostgresMigrations.timeout) {
                try await PostgresMigrations.apply(on: client, logger: logger)
            }
        } catch {
            // Not awaited: a client still trying to connect can take a connect timeout to stop,
            // and the caller is told at once.
            store.runner.cancel()
            let problem = storeError(error)
            throw StoreError(problem.reason, "cannot open the PostgreSQL store at \(url.redacted): \(problem.message)")
        }
        return store
    }

    private static func tlsConfiguration(_ mode: PostgresURL.TLSMode) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        // libpq's prefer and require encrypt without checking the certificate; verify-full checks it.
        if mode != .verifyFull { configuration.certificateVerification = .none }
        return configuration
    }

    private static func tls(_ mode: PostgresURL.TLSMode) -> PostgresClient.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(tlsConfiguration(mode))
        case .require, .verifyFull: .require(tlsConfiguration(mode))
        }
    }

    /// The same for the wake-up listener's own connection, which takes a ready TLS context.
    private static func listenerTLS(_ mode: PostgresURL.TLSMode) throws(StoreError) -> PostgresConnection.Configuration.TLS {
        if mode == .disable { return .disable }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tlsConfiguration(mode))
        } catch {
            throw StoreError(.configuration, "cannot set up TLS for PostgreSQL: \(error)")
        }
        return mode == .prefer ? .prefer(context) : .require(context)
    }

    /// Tells every instance that work is due (debounced); see `PostgresWakeups`.
    func notifyDue() {
        wakeupChannel.notify {
            _ = try? await self.run("notifying other instances", "SELECT pg_notify(\(PostgresWakeups.channel), '')")
        }
    }

    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // The writes already queued are written before the connections go; later ones fail at once.
        await appends.close()
        await finishes.close()
        await keyValueWrites.close()
        runner.cancel()
        await runner.value
    }

    public func schemaVersion() async throws -> Int {
        try await withDeadline("reading the schema version") {
            try await PostgresMigrations.version(on: self.client, logger: self.logger)
        }
    }

    /// A write that changes nothing: it fails while the database is down, unreachable, read-only
    /// (a standby) or out of connections.
    /// Answers within two seconds at most, so that readiness follows the database closely.
    public func writeProblem() async -> String? {
        do {
            try await withDeadline("checking the store", timeout: min(timeout, .seconds(2))) {
                try await self.client.query("UPDATE kv SET value = value WHERE false", logger: self.logger).collect()
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Now in Unix milliseconds, by the store's clock.
    func now() -> Int64 { clock.milliseconds() }

    /// Runs `query` and collects its rows within the deadline. Rows are collected here because
    /// PostgresNIO raises a statement's errors while its rows are read.
    @discardableResult
    func run(_ what: String, _ query: PostgresQuery) async throws -> [PostgresRow] {
        try await withDeadline(what) {
            try await self.client.query(query, logger: self.logger).collect()
        }
    }

    /// Runs `body` in one transaction within the deadline.
    func transaction<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await withDeadline(what) {
            try await self.client.withTransaction(logger: self.logger) { connection in
                try await body(connection)
            }
        }
    }

    /// `body`'s result, or `StoreError(.unavailable)` once the store timeout has passed. The call
    /// is cancelled then, and not awaited: a call waiting for a pool connection ends there and
    /// never runs. A statement already sent cannot be recalled, but the server's own timeouts
    /// (two fifths of the store timeout each) have ended it by then, unless the database stopped
    /// answering altogether.
    func withDeadline<T: Sendable>(_ what: String, timeout: Duration? = nil, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = timeout ?? self.timeout
        let race = DeadlineRace<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Cancelled already: nothing is sent.
                guard race.start(continuation) else { return }
                let timer = Task {
                    try? await Task.sleep(for: timeout)
                    if Task.isCancelled { return }
                    race.finish(.failure(StoreError(.unavailable, "\(what): PostgreSQL did not answer within \(Self.seconds(timeout))")))
                    // A call still waiting for a connection must not run once the database is back:
                    // its caller was told it failed (an append answered 503).
                    race.cancelWork()
                }
                race.work(
                    Task {
                        // A connection the server closed while it sat in the pool (a restart, an
                        // idle timeout) fails the first statement sent on it, before the statement
                        // ran: that one is sent again, on another connection.
                        for attempt in 1...3 {
                            do {
                                race.finish(.success(try await body()))
                                break
                            } catch where Self.closedBeforeSending(error) && attempt < 3 && !Task.isCancelled {
                                continue
                            } catch {
                                race.finish(.failure(Self.storeError(error)))
                                break
                            }
                        }
                        timer.cancel()
                    })
            }
        } onCancel: {
            race.cancel()
        }
    }

    /// The statement went to a connection the server had closed, so it never ran (also when a
    /// transaction's BEGIN did).
    static func closedBeforeSending(_ error: any Error) -> Bool {
        if let error = error as? PSQLError { return error.code == .clientClosedConnection }
        if let error = error as? PostgresTransactionError, let begin = error.beginError { return closedBeforeSending(begin) }
        return false
    }

    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.totalMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    /// A PostgresNIO error as a store error, by its reason: the database unreachable or gone is
    /// `.unavailable` (an append answers 503), a refused statement `.database`.
    static func storeError(_ error: any Error) -> StoreError {
        switch error {
        case let error as StoreError:
            return error
        case let error as PostgresTransactionError:
            if let inner = error.closureError ?? error.beginError ?? error.commitError { return storeError(inner) }
            return StoreError(.database, "database error: a transaction failed")
        case let error as PSQLError:
            return storeError(error)
        case is CancellationError:
            return StoreError(.unavailable, "the store call was cancelled")
        default:
            // The pool's own errors (shut down, circuit breaker open) are not PSQLErrors.
            return StoreError(.unavailable, "database unavailable: \(oneLine(String(describing: error)))")
        }
    }

    private static func storeError(_ error: PSQLError) -> StoreError {
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else {
            let cause = error.underlying.map { oneLine(String(describing: $0)) } ?? "\(error.code)"
            return StoreError(.unavailable, "database unavailable: \(cause)")
        }
        let message = oneLine(error.serverInfo?[.message] ?? "error \(state)")
        switch state {
        case "57014": return StoreError(.unavailable, "database error: the statement timed out (\(message))")
        case "55P03": return StoreError(.busy, "database error: \(message)")
        case "53300", "57P01", "57P02", "57P03": return StoreError(.unavailable, "database unavailable: \(message)")
        case _ where state.hasPrefix("08"): return StoreError(.unavailable, "database unavailable: \(message)")
        case _ where state.hasPrefix("28") || state == "3D000": return StoreError(.configuration, "database refused the connection: \(message)")
        case "23502": return StoreError(.notAnInteger, message)
        case "22021": return StoreError(.database, "database error: PostgreSQL cannot store a NUL character in text (\(message))")
        default: return StoreError(.database, "database error: \(message)")
        }
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

/// A call racing its deadline: whichever ends first resumes the caller, once.
private final class DeadlineRace<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Error>?, work: Task<Void, Never>?, done: Bool)>((nil, nil, false))

    /// False for a race cancelled before it started: it resumed at once, and must start nothing.
    func start(_ continuation: CheckedContinuation<T, Error>) -> Bool {
        let cancelled = state.withLock { state -> Bool in
            if state.done { return true }
            state.continuation = continuation
            return false
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
        return !cancelled
    }

    /// The call's task; cancelled at once if the race is over already.
    func work(_ task: Task<Void, Never>) {
        let over = state.withLock { state -> Bool in
            state.work = task
            return state.done
        }
        if over { task.cancel() }
    }

    func finish(_ result: Result<T, Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<T, Error>? in
            defer { state.continuation = nil; state.done = true }
            return state.continuation
        }
        continuation?.resume(with: result)
    }

    func cancel() {
        cancelWork()
        finish(.failure(CancellationError()))
    }

    func cancelWork() {
        let work = state.withLock { $0.work }
        work?.cancel()
    }
}

/// Lets the batchers, made before the store exists, reach it.
private final class BatchConnection: @unchecked Sendable {
    // Set once in `PostgresStore.init`, before either batcher can run: read-only afterwards.
    var store: PostgresStore?
}
