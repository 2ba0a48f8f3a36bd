import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import Synchronization

/// The embedded store: one SQLite file in WAL mode, created (with its folder) on first start.
///
/// Several processes may share the file: SQLite locks it, and every operation is a single
/// statement, so `increment`, `add` and `compareAndSwap` stay atomic across them.
///
/// Two connections: one for key-value operations and reads, one that writes the inbox through
/// `GroupCommit`, so that no other statement can land inside an inbox transaction. Each has a
/// thread of its own: a statement waiting for SQLite's lock sleeps on its thread, and on a shared
/// pool such waits could take every thread, the one the lock holder needs to commit included.
public final class SQLiteStore: Store {
    let connection: SQLiteConnection
    let writer: GroupCommit
    private let writerConnection: SQLiteConnection
    private let threads: [NIOThreadPool]
    private let writerLoop: MultiThreadedEventLoopGroup
    public let path: String
    let clock: StoreClock
    private let closed = Atomic(false)
    let metrics: StoreMetrics

    public var location: String { "sqlite:\(path)" }

    private init(
        connection: SQLiteConnection, writerConnection: SQLiteConnection, threads: [NIOThreadPool], writerLoop: MultiThreadedEventLoopGroup, path: String,
        clock: StoreClock, metrics: StoreMetrics
    ) {
        self.connection = connection
        self.writerConnection = writerConnection
        self.metrics = metrics
        self.writer = GroupCommit(thread: WriterThread(connection: writerConnection, loop: writerConnection.eventLoop), metrics: metrics)
        self.threads = threads
        self.writerLoop = writerLoop
        self.path = path
        self.clock = clock
    }

    private static func connect(_ path: String, _ thread: NIOThreadPool, _ loop: any EventLoop, _ logger: Logger) async throws -> SQLiteConnection {
        try await SQLiteConnection.open(storage: .file(path: path), threadPool: thread, logger: logger, on: loop)
    }

    /// Opens (or creates) the database at `path` and brings its schema up to date. A statement
    /// waits for another process's lock for at most `options.timeout` (SQLite's busy timeout).
    public static func open(path: String, logger: Logger, options: StoreOptions = StoreOptions()) async throws -> SQLiteStore {
        let busy = "PRAGMA busy_timeout=\(max(1, options.timeout.totalMilliseconds))"
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.configuration, "cannot create the folder \(folder.path) for the store")
        }
        let threads = [NIOThreadPool(numberOfThreads: 1), NIOThreadPool(numberOfThreads: 1)]
        for thread in threads { thread.start() }
        let writerLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        func stopThreads() async {
            for thread in threads { try? await thread.shutdownGracefully() }
            try? await writerLoop.shutdownGracefully()
        }
        let connection: SQLiteConnection
        let writerConnection: SQLiteConnection
        do {
            connection = try await connect(path, threads[0], MultiThreadedEventLoopGroup.singleton.any(), logger)
        } catch {
            await stopThreads()
            throw StoreError(.configuration, "cannot open the SQLite store at \(path): \(error)")
        }
        do {
            _ = try await connection.query(busy)
            _ = try await connection.query("PRAGMA journal_mode=WAL")
            _ = try await connection.query("PRAGMA synchronous=FULL")
            try await SQLiteMigrations.apply(to: connection)
            writerConnection = try await connect(path, threads[1], writerLoop.next(), logger)
        } catch {
            try? await connection.close()
            await stopThreads()
            throw StoreError(.database, "cannot prepare the SQLite store at \(path): \(error)")
        }
        do {
            _ = try await writerConnection.query(busy)
            _ = try await writerConnection.query(options.durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF")
        } catch {
            try? await connection.close()
            try? await writerConnection.close()
            await stopThreads()
            throw StoreError(.database, "cannot prepare the SQLite store at \(path): \(error)")
        }
        return SQLiteStore(connection: connection, writerConnection: writerConnection, threads: threads, writerLoop: writerLoop, path: path, clock: options.clock, metrics: options.metrics)
    }

    /// Closes both connections and stops their threads. In a task of its own: a caller that was
    /// cancelled (a service group torn down rather than shut down) still closes the file.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let (connection, writerConnection, threads, writerLoop, writer) = (connection, writerConnection, threads, writerLoop, writer)
        await Task {
            // The writes already queued are written first; later ones fail at once rather than
            // wait for a writer thread that is gone.
            await writer.close()
            try? await connection.close()
            try? await writerConnection.close()
            for thread in threads { try? await thread.shutdownGracefully() }
            try? await writerLoop.shutdownGracefully()
        }.value
    }

    /// None: processes sharing the file find each other's work by polling.
    public var wakeups: AsyncStream<Void> { AsyncStream { _ in } }

    public var writeStatistics: WriteStatistics {
        let statistics = writer.statistics
        return WriteStatistics(batches: statistics.batches, writes: statistics.jobs, largestBatch: statistics.largestBatch, busy: statistics.busy)
    }

    /// A write that changes nothing goes through the writer: it fails while another process holds
    /// the database locked past the timeout, or the file cannot be written.
    public func writeProblem() async -> String? {
        do {
            try await writer.perform { connection in _ = try await connection.query("UPDATE kv SET value = value WHERE 0") }
            return nil
        } catch {
            return "\(error)"
        }
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
            throw Self.storeError(error)
        }
    }

    /// SQLite's error as a store error, by its reason.
    static func storeError(_ error: SQLiteError) -> StoreError {
        switch error.reason {
        case .busy, .locked, .busyTimeout, .busyInRecovery, .busyInSnapshot, .lockedBySharedCache:
            StoreError(.busy, "database error: \(error.message)")
        case .cantOpen, .ioError, .full, .readOnly, .notADatabase, .corrupt:
            StoreError(.unavailable, "database error: \(error.message)")
        default:
            StoreError(.database, "database error: \(error.message)")
        }
    }

    /// Now in Unix milliseconds, by the store's clock.
    func now() -> Int64 { clock.milliseconds() }
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
        // 2: the inbox. Times are Unix milliseconds. `dedup` is 1 while a delivery counts for
        // deduplication: a `respond: sync` delivery answered non-2xx, or one older than the
        // retention window, gives its (source, id) back. Two triggers keep the hot path at one
        // statement per batch each way: storing a delivery creates its pairs (from `handlers`,
        // running and leased until `claimed_until` when the receiver hands it over at once), and
        // recording an attempt's outcome on a pair writes the attempt's row.
        """
        CREATE TABLE deliveries (
            seq INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            headers TEXT NOT NULL,
            body BLOB NOT NULL,
            handlers TEXT NOT NULL DEFAULT '[]',
            claimed_until INTEGER,
            dedup INTEGER NOT NULL DEFAULT 1
        );
        CREATE UNIQUE INDEX deliveries_dedup ON deliveries (source, id) WHERE dedup = 1;
        CREATE INDEX deliveries_received ON deliveries (received_at);
        CREATE TABLE tasks (
            delivery INTEGER NOT NULL,
            handler TEXT NOT NULL,
            source TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            due_at INTEGER NOT NULL,
            lease_until INTEGER,
            last_error TEXT,
            updated_at INTEGER NOT NULL,
            started_at INTEGER,
            logs TEXT,
            PRIMARY KEY (delivery, handler)
        );
        CREATE INDEX tasks_due ON tasks (due_at) WHERE status IN ('pending', 'retry');
        CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'running';
        CREATE INDEX tasks_status ON tasks (status, delivery);
        CREATE TABLE attempts (
            delivery INTEGER NOT NULL,
            handler TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            finished_at INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            logs TEXT NOT NULL,
            PRIMARY KEY (delivery, handler, attempt)
        ) WITHOUT ROWID;
        CREATE TRIGGER deliveries_pairs AFTER INSERT ON deliveries BEGIN
            INSERT INTO tasks (delivery, handler, source, status, attempts, due_at, lease_until, updated_at)
            SELECT NEW.seq, value, NEW.source,
                   CASE WHEN NEW.claimed_until IS NULL THEN 'pending' ELSE 'running' END,
                   CASE WHEN NEW.claimed_until IS NULL THEN 0 ELSE 1 END,
                   NEW.received_at, NEW.claimed_until, NEW.received_at
            FROM json_each(NEW.handlers);
        END;
        CREATE TRIGGER tasks_attempts AFTER UPDATE OF status ON tasks
        WHEN OLD.status = 'running' AND NEW.status IN ('done', 'retry', 'dead') AND NEW.logs IS NOT NULL BEGIN
            INSERT INTO attempts (delivery, handler, attempt, started_at, finished_at, outcome, error, logs)
            VALUES (NEW.delivery, NEW.handler, NEW.attempts, NEW.started_at, NEW.updated_at, NEW.status, NEW.last_error, NEW.logs)
            ON CONFLICT DO NOTHING;
            UPDATE tasks SET logs = NULL WHERE delivery = NEW.delivery AND handler = NEW.handler;
        END;
        """,
        // 3: one word for a (delivery, handler) pair; replays marked by kind; an ordering key per
        // pair (set by flow control). Triggers are made again for the new table's name.
        """
        DROP TRIGGER deliveries_pairs;
        DROP TRIGGER tasks_attempts;
        ALTER TABLE tasks RENAME TO pairs;
        ALTER TABLE pairs ADD COLUMN kind TEXT NOT NULL DEFAULT 'handler';
        ALTER TABLE pairs ADD COLUMN ordering_key TEXT;
        ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
        UPDATE pairs SET kind = 'replay' WHERE handler = '';
        DROP INDEX tasks_due;
        DROP INDEX tasks_lease;
        DROP INDEX tasks_status;
        CREATE INDEX pairs_due ON pairs (due_at) WHERE status IN ('pending', 'retry');
        CREATE INDEX pairs_lease ON pairs (lease_until) WHERE status = 'running';
        CREATE INDEX pairs_status ON pairs (status, delivery);
        CREATE INDEX deliveries_id ON deliveries (id);
        CREATE TRIGGER deliveries_pairs AFTER INSERT ON deliveries BEGIN
            INSERT INTO pairs (delivery, handler, source, status, attempts, due_at, lease_until, updated_at, ordering_key)
            SELECT NEW.seq, value, NEW.source,
                   CASE WHEN NEW.claimed_until IS NULL THEN 'pending' ELSE 'running' END,
                   CASE WHEN NEW.claimed_until IS NULL THEN 0 ELSE 1 END,
                   NEW.received_at, NEW.claimed_until, NEW.received_at, NEW.ordering_key
            FROM json_each(NEW.handlers);
        END;
        CREATE TRIGGER pairs_attempts AFTER UPDATE OF status ON pairs
        WHEN OLD.status = 'running' AND NEW.status IN ('done', 'retry', 'dead') AND NEW.logs IS NOT NULL BEGIN
            INSERT INTO attempts (delivery, handler, attempt, started_at, finished_at, outcome, error, logs)
            VALUES (NEW.delivery, NEW.handler, NEW.attempts, NEW.started_at, NEW.updated_at, NEW.status, NEW.last_error, NEW.logs)
            ON CONFLICT DO NOTHING;
            UPDATE pairs SET logs = NULL WHERE delivery = NEW.delivery AND handler = NEW.handler;
        END;
        """,
        // 4: a serial handler's pairs of one key, in delivery order (`SerialOrder`): the
        // deliveries' column holds each handler's key, as a JSON object.
        """
        DROP TRIGGER deliveries_pairs;
        CREATE TRIGGER deliveries_pairs AFTER INSERT ON deliveries BEGIN
            INSERT INTO pairs (delivery, handler, source, status, attempts, due_at, lease_until, updated_at, ordering_key)
            SELECT NEW.seq, value, NEW.source,
                   CASE WHEN NEW.claimed_until IS NULL THEN 'pending' ELSE 'running' END,
                   CASE WHEN NEW.claimed_until IS NULL THEN 0 ELSE 1 END,
                   NEW.received_at, NEW.claimed_until, NEW.received_at, json_extract(NEW.ordering_key, '$."' || value || '"')
            FROM json_each(NEW.handlers);
        END;
        CREATE INDEX pairs_order ON pairs (handler, ordering_key, delivery) WHERE ordering_key IS NOT NULL;
        """,
        // 5: a replayed pair's place in its key's order (`SerialOrder.place`).
        """
        ALTER TABLE pairs ADD COLUMN ordered_at INTEGER;
        """,
        // 6: handlers' max_rate, store-wide (`RateSpacing`).
        """
        CREATE TABLE rate_slots (handler TEXT PRIMARY KEY, next_at INTEGER NOT NULL);
        """,
        // 7: the attempts trigger's WHEN compares its status three times: an `IN` list of three
        // constants builds a temporary b-tree each time the trigger fires (once per outcome).
        """
        DROP TRIGGER pairs_attempts;
        CREATE TRIGGER pairs_attempts AFTER UPDATE OF status ON pairs
        WHEN OLD.status = 'running' AND (NEW.status = 'done' OR NEW.status = 'retry' OR NEW.status = 'dead') AND NEW.logs IS NOT NULL BEGIN
            INSERT INTO attempts (delivery, handler, attempt, started_at, finished_at, outcome, error, logs)
            VALUES (NEW.delivery, NEW.handler, NEW.attempts, NEW.started_at, NEW.updated_at, NEW.status, NEW.last_error, NEW.logs)
            ON CONFLICT DO NOTHING;
            UPDATE pairs SET logs = NULL WHERE delivery = NEW.delivery AND handler = NEW.handler;
        END;
        """,
    ]

    /// A step's statements: split at each `;` that ends a line, except inside a trigger's
    /// `BEGIN ... END;` body.
    static func statements(_ step: String) -> [String] {
        var statements: [String] = []
        var current = ""
        var inTrigger = false
        for line in step.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            current += line + "\n"
            if trimmed.hasPrefix("CREATE TRIGGER") { inTrigger = true }
            guard trimmed.hasSuffix(";") else { continue }
            if inTrigger && trimmed != "END;" { continue }
            inTrigger = false
            let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
            statements.append(String(statement.dropLast()))
            current = ""
        }
        let rest = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }

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
                for statement in statements(step) {
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
