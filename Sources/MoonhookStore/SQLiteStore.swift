import Foundation
import Logging
import NIOCore
import SQLiteNIO

/// The embedded store: one SQLite file in WAL mode, created (with its folder) on first start.
///
/// Several processes may share the file: SQLite locks it, and every operation is a single
/// statement, so `increment`, `add` and `compareAndSwap` stay atomic across them.
public final class SQLiteStore: Sendable {
    let connection: SQLiteConnection
    public let path: String

    private init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.path = path
    }

    /// Opens (or creates) the database at `path` and brings its schema up to date.
    public static func open(path: String, logger: Logger) async throws -> SQLiteStore {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.configuration, "cannot create the folder \(folder.path) for the store")
        }
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw StoreError(.configuration, "cannot open the SQLite store at \(path): \(error)")
        }
        let store = SQLiteStore(connection: connection, path: path)
        do {
            _ = try await connection.query("PRAGMA busy_timeout=10000")
            _ = try await connection.query("PRAGMA journal_mode=WAL")
            _ = try await connection.query("PRAGMA synchronous=FULL")
            try await SQLiteMigrations.apply(to: connection)
        } catch {
            try? await connection.close()
            throw StoreError(.database, "cannot prepare the SQLite store at \(path): \(error)")
        }
        return store
    }

    public func close() async {
        try? await connection.close()
    }

    /// The schema version the file is at.
    public func schemaVersion() async throws -> Int {
        try await SQLiteMigrations.version(of: connection)
    }

    @discardableResult
    func query(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        do {
            return try await connection.query(sql, binds)
        } catch let error as SQLiteError {
            throw StoreError(.database, "database error: \(error.message)")
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// Forward-only schema changes; `PRAGMA user_version` records how far a file has come.
enum SQLiteMigrations {
    static let steps: [String] = [
        // 1: key-value storage.
        """
        CREATE TABLE kv (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            expires_at INTEGER,
            PRIMARY KEY (namespace, key)
        ) WITHOUT ROWID;
        CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
        """,
    ]

    static func version(of connection: SQLiteConnection) async throws -> Int {
        let rows = try await connection.query("PRAGMA user_version")
        return Int(rows.first?.column("user_version")?.integer ?? 0)
    }

    /// Applies the steps the file lacks, each in its own write transaction. The version is read
    /// inside the transaction, so servers starting at once never apply a step twice.
    static func apply(to connection: SQLiteConnection) async throws {
        for (index, step) in steps.enumerated() {
            _ = try await connection.query("BEGIN IMMEDIATE")
            let current: Int
            do {
                current = try await version(of: connection)
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
            guard current <= steps.count else {
                _ = try? await connection.query("ROLLBACK")
                throw StoreError(.configuration, "the store's schema version \(current) is newer than this moonhook (\(steps.count))")
            }
            guard current == index else {
                _ = try? await connection.query("ROLLBACK")
                continue
            }
            do {
                for statement in step.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }) where !statement.isEmpty {
                    _ = try await connection.query(statement)
                }
                _ = try await connection.query("PRAGMA user_version = \(index + 1)")
                _ = try await connection.query("COMMIT")
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }
}
