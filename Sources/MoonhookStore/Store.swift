import Foundation
import ServiceLifecycle

/// Everything moonhook keeps: the inbox of deliveries and the handlers' key-value data, on one
/// engine. The application, the admin API, the CLI and the tests hold `any Store`; which engine it
/// is stays inside this module (`StoreLocation.open`).
///
/// A `Service`, like Hummingbird's `PersistDriver`: listed first in the server's `ServiceGroup`,
/// it runs for the life of the server (an engine may keep its connections and background work in
/// `run`) and closes once every service after it has stopped. Outside a group (the CLI, tests),
/// call `close` when done.
public protocol Store: DeliveryInbox, KeyValueStore, Service {
    /// Where the store is, for logs: `sqlite:PATH` or the PostgreSQL URL without its password.
    var location: String { get }
    /// How writes (appends, outcomes, key-value writes) were batched so far.
    var writeStatistics: WriteStatistics { get }
    /// The schema version the database is at.
    func schemaVersion() async throws -> Int
    /// Whether the store takes writes now: nil when it does, else the reason in one line.
    func writeProblem() async -> String?
    /// Releases connections and threads, once the writes already queued are written; a write that
    /// comes later fails at once (`.unavailable`, "the store is closed"). Idempotent.
    func close() async
}

extension Store {
    /// Waits for graceful shutdown, then closes: the store stops last, since it is listed first.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}

/// How a store's writes were batched: batches, writes, the largest batch, and the time spent writing.
public struct WriteStatistics: Sendable, Equatable {
    public var batches = 0
    public var writes = 0
    public var largestBatch = 0
    public var busy: Duration = .zero

    public init(batches: Int = 0, writes: Int = 0, largestBatch: Int = 0, busy: Duration = .zero) {
        self.batches = batches
        self.writes = writes
        self.largestBatch = largestBatch
        self.busy = busy
    }
}

/// How a store is opened, whatever its engine.
public struct StoreOptions: Sendable {
    /// False: inbox writes do not wait for the disk (a power cut can lose accepted deliveries);
    /// that exists to measure what durability costs.
    public var durable: Bool
    /// How long one store call may wait for the database (SQLite's busy timeout, PostgreSQL's
    /// connection and statement deadline): `deliveries.store_timeout`.
    public var timeout: Duration
    /// The time the store stamps and compares with (due times, leases, expiry, retention).
    public var clock: StoreClock
    /// Where batch sizes, commit times, appends and write errors are reported.
    public var metrics: StoreMetrics

    public init(durable: Bool = true, timeout: Duration = .seconds(5), clock: StoreClock = .system, metrics: StoreMetrics = .off) {
        self.durable = durable
        self.timeout = timeout
        self.clock = clock
        self.metrics = metrics
    }
}

/// The store's idea of now. Tests move it to expire leases, keys and retention windows without
/// waiting for them.
public struct StoreClock: Sendable {
    private let read: @Sendable () -> Date

    public init(_ read: @escaping @Sendable () -> Date) {
        self.read = read
    }

    public static let system = StoreClock { Date() }

    public func now() -> Date { read() }

    /// Now in Unix milliseconds, as the engines store times.
    public func milliseconds() -> Int64 { Int64((read().timeIntervalSince1970 * 1000).rounded()) }
}
