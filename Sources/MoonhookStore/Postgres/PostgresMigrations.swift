import Logging
import PostgresNIO

/// Forward-only schema changes, recorded in `moonhook_schema`. Each step is a list of single
/// statements (PostgresNIO sends no multi-statement queries). All of them run in one transaction
/// under an advisory lock, so servers starting at once apply each step exactly once.
///
/// Times are Unix milliseconds from the store's clock (as on SQLite), so the engines share their
/// tests' injectable clock; instances must keep their clocks in step (NTP), as leases compare them.
enum PostgresMigrations {
    /// How long applying them may take, waiting for another instance's included.
    static let timeout = Duration.seconds(60)

    /// `pg_advisory_xact_lock`'s key: "moonhook" in ASCII.
    static let lockKey: Int64 = 0x6d6f_6f6e_686f_6f6b

    static let steps: [[String]] = [
        // 1: key-value storage, the inbox, its pairs and their attempts.
        [
            """
            CREATE TABLE kv (
                namespace text NOT NULL,
                key text COLLATE "C" NOT NULL,
                value text NOT NULL,
                expires_at bigint,
                PRIMARY KEY (namespace, key)
            )
            """,
            "CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL",
            // `dedup` is true while a delivery counts for deduplication: a `respond: sync` delivery
            // answered non-2xx, or one older than the retention window, gives its (source, id) back.
            """
            CREATE TABLE deliveries (
                seq bigserial PRIMARY KEY,
                source text NOT NULL,
                id text NOT NULL,
                type text NOT NULL,
                received_at bigint NOT NULL,
                headers text NOT NULL,
                body bytea NOT NULL,
                ordering_key text,
                dedup boolean NOT NULL DEFAULT true
            )
            """,
            "CREATE UNIQUE INDEX deliveries_dedup ON deliveries (source, id) WHERE dedup",
            "CREATE INDEX deliveries_received ON deliveries (received_at)",
            "CREATE INDEX deliveries_id ON deliveries (id)",
            """
            CREATE TABLE pairs (
                delivery bigint NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
                handler text NOT NULL,
                kind text NOT NULL DEFAULT 'handler',
                source text NOT NULL,
                status text NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                failures integer NOT NULL DEFAULT 0,
                due_at bigint NOT NULL,
                lease_until bigint,
                last_error text,
                updated_at bigint NOT NULL,
                ordering_key text,
                PRIMARY KEY (delivery, handler)
            )
            """,
            "CREATE INDEX pairs_due ON pairs (handler, due_at) WHERE status IN ('pending', 'retry')",
            "CREATE INDEX pairs_lease ON pairs (lease_until) WHERE status = 'running'",
            "CREATE INDEX pairs_status ON pairs (status, delivery)",
            """
            CREATE TABLE attempts (
                delivery bigint NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
                handler text NOT NULL,
                attempt integer NOT NULL,
                started_at bigint NOT NULL,
                finished_at bigint NOT NULL,
                outcome text NOT NULL,
                error text,
                logs text NOT NULL,
                PRIMARY KEY (delivery, handler, attempt)
            )
            """,
        ],
        // 2: handlers' key-value writes in batches.
        [PostgresStore.keyValueFunction],
        // 3: a serial handler's pairs of one key, in delivery order (`SerialOrder`).
        ["CREATE INDEX pairs_order ON pairs (handler, ordering_key, delivery) WHERE ordering_key IS NOT NULL"],
        // 4: a replayed pair's place in its key's order (`SerialOrder.place`).
        ["ALTER TABLE pairs ADD COLUMN ordered_at bigint"],
        // 5: handlers' max_rate, store-wide (`RateSpacing`).
        ["CREATE TABLE rate_slots (handler text PRIMARY KEY, next_at bigint NOT NULL)"],
    ]

    static func version(on client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query(
            "SELECT coalesce(max(version), 0)::int8 FROM moonhook_schema", logger: logger
        ).collect()
        return Int(try rows.first?.decode(Int64.self) ?? 0)
    }

    static func apply(on client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            // The session's statement and lock timeouts are the store's, seconds: too short here.
            let milliseconds = timeout.totalMilliseconds
            try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(milliseconds)"), logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = \(milliseconds)"), logger: logger)
            _ = try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger).collect()
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS moonhook_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            let rows = try await connection.query("SELECT coalesce(max(version), 0)::int8 FROM moonhook_schema", logger: logger).collect()
            let current = Int(try rows.first?.decode(Int64.self) ?? 0)
            guard current <= steps.count else {
                throw StoreError(.configuration, "the store's schema version \(current) is newer than this moonhook (\(steps.count))")
            }
            for (index, step) in steps.enumerated() where index >= current {
                for statement in step {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO moonhook_schema (version) VALUES (\(index + 1))", logger: logger)
                logger.info("store schema migrated", metadata: ["store.version": "\(index + 1)"])
            }
        }
    }
}
