import PostgresNIO

extension PostgresStore {

    public func get(_ namespace: String, _ key: String) async throws -> [UInt8]? {
        let rows = try await run(
            "reading a key",
            "SELECT value FROM kv WHERE namespace = \(namespace) AND key = \(key) AND (expires_at IS NULL OR expires_at > \(now()))")
        return try rows.first.map { Array(try $0.decode(String.self).utf8) }
    }

    public func set(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws {
        _ = try await write(KeyValueWrite(namespace, key, .set(value, ttl: ttl)))
    }

    public func delete(_ namespace: String, _ key: String) async throws -> Bool {
        try await write(KeyValueWrite(namespace, key, .delete)) == .flag(true)
    }

    public func increment(_ namespace: String, _ key: String, by: Int64, ttl: Duration?) async throws -> Int64 {
        guard case .number(let value) = try await write(KeyValueWrite(namespace, key, .increment(by, ttl: ttl))) else {
            throw StoreError(.database, "increment returned no value")
        }
        return value
    }

    public func add(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws -> Bool {
        try await write(KeyValueWrite(namespace, key, .add(value, ttl: ttl))) == .flag(true)
    }

    public func compareAndSwap(_ namespace: String, _ key: String, expected: [UInt8]?, new: [UInt8], ttl: Duration?) async throws -> Bool {
        guard let expected else { return try await add(namespace, key, new, ttl: ttl) }
        return try await write(KeyValueWrite(namespace, key, .compareAndSwap(expected: expected, new: new, ttl: ttl))) == .flag(true)
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
