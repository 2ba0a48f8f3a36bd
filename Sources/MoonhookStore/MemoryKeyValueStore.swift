import Foundation

/// A `KeyValueStore` in memory, for `moonhook run` and single-shot tools: nothing survives the process.
public actor MemoryKeyValueStore: KeyValueStore {
    private typealias Entry = KeyValueWrite.Entry

    private var entries: [String: [String: Entry]] = [:]
    private let clock: @Sendable () -> Int64

    /// - Parameter clock: milliseconds since the epoch (tests pass their own).
    public init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.clock = clock
    }

    private func live(_ namespace: String, _ key: String) -> Entry? {
        guard let entry = entries[namespace]?[key] else { return nil }
        if let expiresAt = entry.expiresAt, expiresAt <= clock() { return nil }
        return entry
    }

    private func write(_ write: KeyValueWrite) throws(StoreError) -> KeyValueWrite.Outcome {
        let (entry, outcome) = try write.apply(to: live(write.namespace, write.key), now: clock())
        entries[write.namespace, default: [:]][write.key] = entry
        return outcome
    }

    public func get(_ namespace: String, _ key: String) -> [UInt8]? { live(namespace, key)?.value }

    public func set(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) throws {
        _ = try write(KeyValueWrite(namespace, key, .set(value, ttl: ttl)))
    }

    public func delete(_ namespace: String, _ key: String) throws -> Bool {
        try write(KeyValueWrite(namespace, key, .delete)) == .flag(true)
    }

    public func increment(_ namespace: String, _ key: String, by: Int64, ttl: Duration?) throws -> Int64 {
        guard case .number(let value) = try write(KeyValueWrite(namespace, key, .increment(by, ttl: ttl))) else { return 0 }
        return value
    }

    public func add(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) throws -> Bool {
        try write(KeyValueWrite(namespace, key, .add(value, ttl: ttl))) == .flag(true)
    }

    public func compareAndSwap(_ namespace: String, _ key: String, expected: [UInt8]?, new: [UInt8], ttl: Duration?) throws -> Bool {
        guard let expected else { return try add(namespace, key, new, ttl: ttl) }
        return try write(KeyValueWrite(namespace, key, .compareAndSwap(expected: expected, new: new, ttl: ttl))) == .flag(true)
    }

    public func list(_ namespace: String, prefix: String, limit: Int, after cursor: String?) -> [(key: String, value: [UInt8])] {
        let keys = (entries[namespace] ?? [:]).keys.filter { $0.hasPrefix(prefix) && (cursor == nil || $0 > cursor!) }.sorted()
        return keys.compactMap { key in live(namespace, key).map { (key: key, value: $0.value) } }.prefix(limit).map { $0 }
    }

    public func purgeExpired() -> Int {
        let now = clock()
        var removed = 0
        for (namespace, table) in entries {
            for (key, entry) in table where (entry.expiresAt ?? .max) <= now {
                entries[namespace]?[key] = nil
                removed += 1
            }
        }
        return removed
    }

    public func entries(after cursor: KeyValueEntry?, limit: Int) -> [KeyValueEntry] {
        var result: [KeyValueEntry] = []
        for namespace in entries.keys.sorted() where cursor == nil || namespace >= cursor!.namespace {
            for key in entries[namespace]!.keys.sorted() {
                if let cursor, namespace == cursor.namespace, key <= cursor.key { continue }
                guard let entry = live(namespace, key) else { continue }
                result.append(
                    KeyValueEntry(namespace: namespace, key: key, value: entry.value, expiresAt: entry.expiresAt.map { Date(timeIntervalSince1970: Double($0) / 1000) }))
                if result.count >= limit { return result }
            }
        }
        return result
    }
}
