import NIOCore
import SQLiteNIO

extension SQLiteStore {
    private func text(_ bytes: [UInt8]) -> SQLiteData { .text(String(decoding: bytes, as: UTF8.self)) }
    private func expiry(_ ttl: Duration?) -> SQLiteData { ttl.map { .integer(Int(now() + $0.totalMilliseconds)) } ?? .null }

    public func get(_ namespace: String, _ key: String) async throws -> [UInt8]? {
        let rows = try await query(
            "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            [.text(namespace), .text(key), .integer(Int(now()))])
        return rows.first?.column("value")?.string.map { Array($0.utf8) }
    }

    public func set(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws {
        try await query(
            """
            INSERT INTO kv (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
            """,
            [.text(namespace), .text(key), text(value), expiry(ttl)])
    }

    public func delete(_ namespace: String, _ key: String) async throws -> Bool {
        let rows = try await query(
            "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 RETURNING expires_at",
            [.text(namespace), .text(key)])
        guard let row = rows.first else { return false }
        let expiresAt = row.column("expires_at")?.integer
        return expiresAt == nil || Int64(expiresAt!) > now()
    }

    public func increment(_ namespace: String, _ key: String, by: Int64, ttl: Duration?) async throws -> Int64 {
        // One statement, so concurrent increments from any number of processes never lose an update.
        // A live value that is not an integer makes the new value NULL, which the NOT NULL
        // constraint refuses; an overflow makes SQLite switch to a float, refused the same way.
        do {
            let rows = try await connection.query(
                """
                INSERT INTO kv (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (namespace, key) DO UPDATE SET
                    value = CASE
                        WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= ?5 THEN excluded.value
                        WHEN json_valid(kv.value) AND json_type(kv.value) = 'integer'
                             AND typeof(CAST(kv.value AS INTEGER) + ?6) = 'integer'
                             AND ((?6 >= 0 AND CAST(kv.value AS INTEGER) + ?6 >= CAST(kv.value AS INTEGER))
                                  OR (?6 < 0 AND CAST(kv.value AS INTEGER) + ?6 < CAST(kv.value AS INTEGER)))
                        THEN CAST(CAST(kv.value AS INTEGER) + ?6 AS TEXT)
                        ELSE NULL END,
                    expires_at = CASE
                        WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= ?5 THEN excluded.expires_at
                        ELSE kv.expires_at END
                RETURNING value
                """,
                [.text(namespace), .text(key), .text(String(by)), expiry(ttl), .integer(Int(now())), .integer(Int(by))])
            guard let text = rows.first?.column("value")?.string, let value = Int64(text) else {
                throw StoreError(.database, "increment returned no value")
            }
            return value
        } catch let error as SQLiteError where error.reason == .constraintNotNullFailed || error.reason == .constraint {
            throw StoreError(.notAnInteger, "the value at '\(key)' is not an integer, or adding \(by) overflows 64 bits")
        } catch let error as SQLiteError {
            throw Self.storeError(error)
        }
    }

    public func add(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws -> Bool {
        let rows = try await query(
            """
            INSERT INTO kv (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?5
            RETURNING 1 AS added
            """,
            [.text(namespace), .text(key), text(value), expiry(ttl), .integer(Int(now()))])
        return !rows.isEmpty
    }

    public func compareAndSwap(_ namespace: String, _ key: String, expected: [UInt8]?, new: [UInt8], ttl: Duration?) async throws -> Bool {
        guard let expected else { return try await add(namespace, key, new, ttl: ttl) }
        let rows = try await query(
            """
            UPDATE kv SET value = ?3, expires_at = ?4
            WHERE namespace = ?1 AND key = ?2 AND value = ?5 AND (expires_at IS NULL OR expires_at > ?6)
            RETURNING 1 AS swapped
            """,
            [.text(namespace), .text(key), text(new), expiry(ttl), text(expected), .integer(Int(now()))])
        return !rows.isEmpty
    }

    public func list(_ namespace: String, prefix: String, limit: Int, after cursor: String?) async throws -> [(key: String, value: [UInt8])] {
        let rows = try await query(
            """
            SELECT key, value FROM kv
            WHERE namespace = ?1 AND substr(key, 1, length(?2)) = ?2 AND key > ?3 AND (expires_at IS NULL OR expires_at > ?4)
            ORDER BY key LIMIT ?5
            """,
            [.text(namespace), .text(prefix), .text(cursor ?? ""), .integer(Int(now())), .integer(limit)])
        return rows.compactMap { row in
            guard let key = row.column("key")?.string, let value = row.column("value")?.string else { return nil }
            return (key: key, value: Array(value.utf8))
        }
    }

    public func purgeExpired() async throws -> Int {
        let rows = try await query("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1 RETURNING 1", [.integer(Int(now()))])
        return rows.count
    }

    public func entries(after cursor: KeyValueEntry?, limit: Int) async throws -> [KeyValueEntry] {
        let rows = try await query(
            """
            SELECT namespace, key, value, expires_at FROM kv
            WHERE (namespace, key) > (?1, ?2) AND (expires_at IS NULL OR expires_at > ?3)
            ORDER BY namespace, key LIMIT ?4
            """,
            [.text(cursor?.namespace ?? ""), .text(cursor?.key ?? ""), .integer(Int(now())), .integer(max(0, limit))])
        return rows.compactMap { row in
            guard let namespace = row.column("namespace")?.string, let key = row.column("key")?.string, let value = row.column("value")?.string else {
                return nil
            }
            return KeyValueEntry(namespace: namespace, key: key, value: Array(value.utf8), expiresAt: row.column("expires_at")?.integer.map { Self.date($0) })
        }
    }
}
