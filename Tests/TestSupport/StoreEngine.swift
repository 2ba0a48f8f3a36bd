import Foundation
import Logging
import MoonhookStore
import PostgresNIO
import SQLiteNIO
import Synchronization
import Testing

/// The engines the shared suites run against: every store behaviour is tested on each through
/// `@Test(arguments: StoreEngine.all)`.
public enum StoreEngine: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    /// SQLite always; PostgreSQL when `make test` started a cluster, and always under CI, where a
    /// missing cluster fails the PostgreSQL cases instead of leaving them out.
    public static let all: [StoreEngine] = TestPostgres.enabled ? [.sqlite, .postgres] : [.sqlite]

    public var testDescription: String { rawValue }

    /// Where a new, empty database of this engine is (a server's `store` setting); `folder` holds
    /// an SQLite file.
    public func location(in folder: URL) async throws -> String {
        switch self {
        case .sqlite: "sqlite:" + folder.appending(path: "state/moonhook.sqlite").path
        case .postgres: try await TestPostgres.database()
        }
    }

    /// A new, empty store of this engine, opened through `StoreLocation` as the server opens it.
    public func make(clock: StoreClock = .system, timeout: Duration = .seconds(5)) async throws -> TestStore {
        switch self {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appending(path: "moonhook-store-\(UUID().uuidString)")
            let location = "sqlite:" + folder.appending(path: "nested/moonhook.sqlite").path
            return try await TestStore(location: location, options: StoreOptions(timeout: timeout, clock: clock)) {
                try? FileManager.default.removeItem(at: folder)
            }
        case .postgres:
            let location = try await TestPostgres.database()
            return try await TestStore(location: location, options: StoreOptions(timeout: timeout, clock: clock)) {
                await TestPostgres.drop(location)
            }
        }
    }
}

/// A store made for one test, with what it takes to open it again and to remove it.
public struct TestStore: Sendable {
    public let location: String
    public let options: StoreOptions
    public let store: any Store
    private let cleanup: @Sendable () async -> Void

    init(location: String, options: StoreOptions, cleanup: @escaping @Sendable () async -> Void) async throws {
        self.location = location
        self.options = options
        self.cleanup = cleanup
        self.store = try await StoreLocation(location).open(logger: Logger(label: "test"), options: options)
    }

    /// Another connection to the same database (as another process would have).
    public func another() async throws -> any Store {
        try await StoreLocation(location).open(logger: Logger(label: "test"), options: options)
    }

    /// Runs `body` while a connection of its own (as another process would have) holds the
    /// database's write lock: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's `EXCLUSIVE` lock on `kv`
    /// (which lets reads through and holds every write of a key).
    public func holdingTheWriteLock(_ body: @Sendable () async throws -> Void) async throws {
        let logger = Logger(label: "test-lock")
        if location.hasPrefix("sqlite:") {
            let connection = try await SQLiteConnection.open(storage: .file(path: String(location.dropFirst("sqlite:".count))), logger: logger)
            do {
                _ = try await connection.query("BEGIN IMMEDIATE")
                try await body()
                _ = try await connection.query("ROLLBACK")
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        } else {
            guard let components = URLComponents(string: location), let host = components.host, let port = components.port else { throw TestPostgres.Missing() }
            try await TestPostgres.admin(host: host, port: port, database: String(components.path.dropFirst())) { client, logger in
                try await client.withConnection { connection in
                    try await connection.query("BEGIN", logger: logger)
                    try await connection.query("LOCK TABLE kv IN EXCLUSIVE MODE", logger: logger)
                    try await body()
                    try await connection.query("ROLLBACK", logger: logger)
                }
            }
        }
    }

    /// Closes the store and removes its database.
    public func remove() async {
        await store.close()
        await cleanup()
    }
}

/// A clock that tests move by hand, so that leases, TTLs and retention windows run out at once.
public final class TestClock: Sendable {
    private let current = Mutex(Date())

    public init() {}

    public var clock: StoreClock { StoreClock { self.current.withLock { $0 } } }

    public func advance(by duration: Duration) {
        current.withLock { $0 = $0.addingTimeInterval(Double(duration.totalMilliseconds) / 1000) }
    }
}

public func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
