import PostgresNIO

extension PostgresStore {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
    private func expiry(_ ttl: Duration?) -> Int64? { ttl.map { now() + $0.totalMilliseconds } }

    public func get(_ namespace: String, _ key: String) async throws -> [UInt8]? {
        let rows = try await run(
            "reading a key",
            "SELECT value FROM kv WHERE namespace = \(namespace) AND key = \(key) AND (expires_at IS NULL OR expires_at > \(now()))")
        return try rows.first.map { Array(try $0.decode(String.self).utf8) }
    }

    public func set(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws {
        try await run(
            "writing a key",
            """
            INSERT INTO kv (namespace, key, value, expires_at) VALUES (\(namespace), \(key), \(text(value)), \(expiry(ttl))::int8)
            ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
            """)
    }

    public func delete(_ namespace: String, _ key: String) async throws -> Bool {
        let rows = try await run(
            "deleting a key",
            "DELETE FROM kv WHERE namespace = \(namespace) AND key = \(key) RETURNING expires_at IS NULL OR expires_at > \(now())")
        return try rows.first?.decode(Bool.self) ?? false
    }

    public func increment(_ namespace: String, _ key: String, by: Int64, ttl: Duration?) async throws -> Int64 {
        // One statement: the row is locked while it is computed, so increments from any number of
        // processes never lose an update. A live value that is not a JSON integer, or a sum past 64
        // bits, makes the new value NULL, which the NOT NULL constraint refuses. The nested CASE
        // keeps the numeric cast from ever seeing a value the pattern did not pass.
        let now = now()
        do {
            let rows = try await run(
                "incrementing a key",
                """
                INSERT INTO kv (namespace, key, value, expires_at) VALUES (\(namespace), \(key), \(String(by)), \(expiry(ttl))::int8)
                ON CONFLICT (namespace, key) DO UPDATE SET
                    value = CASE
                        WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= \(now) THEN EXCLUDED.value
                        WHEN kv.value ~ '^-?(0|[1-9][0-9]{0,18})$' THEN
                            CASE WHEN kv.value::numeric + \(by)::int8 BETWEEN -9223372036854775808 AND 9223372036854775807
                                 THEN (kv.value::numeric + \(by)::int8)::text END
                        END,
                    expires_at = CASE WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= \(now) THEN EXCLUDED.expires_at ELSE kv.expires_at END
                RETURNING value
                """)
            guard let value = try rows.first.flatMap({ Int64(try $0.decode(String.self)) }) else {
                throw StoreError(.database, "increment returned no value")
            }
            return value
        } catch let error as StoreError where error.reason == .notAnInteger {
            throw StoreError(.notAnInteger, "the value at '\(key)' is not an integer, or adding \(by) overflows 64 bits")
        }
    }

    public func add(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws -> Bool {
        let rows = try await run(
            "adding a key",
            """
            INSERT INTO kv (namespace, key, value, expires_at) VALUES (\(namespace), \(key), \(text(value)), \(expiry(ttl))::int8)
            ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
                WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= \(now())
            RETURNING 1
            """)
        return !rows.isEmpty
    }

    public func compareAndSwap(_ namespace: String, _ key: String, expected: [UInt8]?, new: [UInt8], ttl: Duration?) async throws -> Bool {
        guard let expected else { return try await add(namespace, key, new, ttl: ttl) }
        let rows = try await run(
            "swapping a key",
            """
            UPDATE kv SET value = \(text(new)), expires_at = \(expiry(ttl))::int8
            WHERE namespace = \(namespace) AND key = \(key) AND value = \(text(expected)) AND (expires_at IS NULL OR expires_at > \(now()))
            RETURNING 1
            """)
        return !rows.isEmpty
    }

    public func list(_ namespace: String, prefix: String, limit: Int, after cursor: String?) async throws -> [(key: String, value: [UInt8])] {
        // Keys collate as bytes ("C"), so the prefix's keys are one range of the primary key.
        let rows = try await run(
            "listing keys",
            """
            SELECT key, value FROM kv
            WHERE namespace = \(namespace) AND key >= \(prefix) AND starts_with(key, \(prefix)) AND key > \(cursor ?? "")
              AND (expires_at IS NULL OR expires_at > \(now()))
            ORDER BY key LIMIT \(Int64(max(0, limit)))
            """)
        return try rows.map { row in
            let (key, value) = try row.decode((String, String).self)
            return (key: key, value: Array(value.utf8))
        }
    }

    public func purgeExpired() async throws -> Int {
        let rows = try await run(
            "removing expired keys",
            """
            WITH gone AS (DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= \(now()) RETURNING 1)
            SELECT count(*)::int8 FROM gone
            """)
        return Int(try rows.first?.decode(Int64.self) ?? 0)
    }

    public func entries(after cursor: KeyValueEntry?, limit: Int) async throws -> [KeyValueEntry] {
        let rows = try await run(
            "reading keys",
            """
            SELECT namespace, key, value, expires_at FROM kv
            WHERE (namespace COLLATE "C", key) > (\(cursor?.namespace ?? "") COLLATE "C", \(cursor?.key ?? ""))
              AND (expires_at IS NULL OR expires_at > \(now()))
            ORDER BY namespace COLLATE "C", key LIMIT \(Int64(max(0, limit)))
            """)
        return try rows.map { row in
            let (namespace, key, value, expiresAt) = try row.decode((String, String, String, Int64?).self)
            return KeyValueEntry(namespace: namespace, key: key, value: Array(value.utf8), expiresAt: expiresAt.map(Self.date))
        }
    }
}
