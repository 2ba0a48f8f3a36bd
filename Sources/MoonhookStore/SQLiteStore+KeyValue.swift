import NIOCore
import SQLiteNIO

extension SQLiteStore {

    /// Reads run on their own connection, never behind the writer; they see every write that
    /// returned, since a write returns only once committed.
    public func get(_ namespace: String, _ key: String) async throws -> [UInt8]? {
        let rows = try await query(
            "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            [.text(namespace), .text(key), .integer(Int(now()))])
        return rows.first?.column("value")?.string.map { Array($0.utf8) }
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

    /// Hands `write` to the writer's next group commit, with every other key-value write queued
    /// by then: it shares the batch's transaction and fsync, and returns once they are done.
    private func write(_ write: KeyValueWrite) async throws -> KeyValueWrite.Outcome {
        let clock = clock
        let result = try await writer.perform(kind: "kv", item: write) { writer, items in
            try await Self.write(items, now: clock.milliseconds(), on: writer)
        }
        return try result.get()
    }

    /// Applies a batch of writes inside the writer's transaction, which holds the database's write
    /// lock, so that nothing changes between the read and the write: one read of every key the
    /// batch touches, the writes applied in order in memory (`KeyValueWrite.apply`, each with its
    /// own outcome, a failure included), one write of every key that changed. A statement's cost
    /// is mostly SQLite compiling it (SQLiteNIO keeps no prepared statements), so a batch costs
    /// three statements whatever the number of writes in it.
    static func write(_ items: [KeyValueWrite], now: Int64, on writer: isolated WriterThread) async throws -> [Result<KeyValueWrite.Outcome, StoreError>] {
        struct Key: Hashable {
            var namespace: String
            var key: String
        }
        let keys = Array(Set(items.map { Key(namespace: $0.namespace, key: $0.key) }))
        var entries: [Key: KeyValueWrite.Entry] = [:]
        for chunk in stride(from: 0, to: keys.count, by: 400).map({ keys[$0..<min($0 + 400, keys.count)] }) {
            let rows = try await writer.connection.query(
                "SELECT namespace, key, value, expires_at FROM kv WHERE (namespace, key) IN (VALUES \(Array(repeating: "(?, ?)", count: chunk.count).joined(separator: ", ")))",
                chunk.flatMap { [SQLiteData.text($0.namespace), .text($0.key)] })
            for row in rows {
                guard let namespace = row.column("namespace")?.string, let key = row.column("key")?.string, let value = row.column("value")?.string else { continue }
                let expiresAt = row.column("expires_at")?.integer.map(Int64.init)
                if let expiresAt, expiresAt <= now { continue }
                entries[Key(namespace: namespace, key: key)] = KeyValueWrite.Entry(value: Array(value.utf8), expiresAt: expiresAt)
            }
        }
        var changed: Set<Key> = []
        let results = items.map { item -> Result<KeyValueWrite.Outcome, StoreError> in
            let key = Key(namespace: item.namespace, key: item.key)
            do throws(StoreError) {
                let (entry, outcome) = try item.apply(to: entries[key], now: now)
                if entry != entries[key] || entry == nil {
                    entries[key] = entry
                    changed.insert(key)
                }
                return .success(outcome)
            } catch {
                return .failure(error)
            }
        }
        let kept = Array(changed.filter { entries[$0] != nil })
        let gone = Array(changed.filter { entries[$0] == nil })
        for chunk in stride(from: 0, to: kept.count, by: 400).map({ kept[$0..<min($0 + 400, kept.count)] }) {
            var binds: [SQLiteData] = []
            for key in chunk {
                let entry = entries[key]!
                binds += [.text(key.namespace), .text(key.key), .text(String(decoding: entry.value, as: UTF8.self)), entry.expiresAt.map { .integer(Int($0)) } ?? .null]
            }
            _ = try await writer.connection.query(
                "INSERT INTO kv (namespace, key, value, expires_at) VALUES \(Array(repeating: "(?, ?, ?, ?)", count: chunk.count).joined(separator: ", ")) "
                    + "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                binds)
        }
        for chunk in stride(from: 0, to: gone.count, by: 400).map({ gone[$0..<min($0 + 400, gone.count)] }) {
            _ = try await writer.connection.query(
                "DELETE FROM kv WHERE (namespace, key) IN (VALUES \(Array(repeating: "(?, ?)", count: chunk.count).joined(separator: ", ")))",
                chunk.flatMap { [SQLiteData.text($0.namespace), .text($0.key)] })
        }
        return results
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
        let now = Int(now())
        return try await writer.perform { connection in
            try await connection.query("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1 RETURNING 1", [.integer(now)]).count
        }
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
