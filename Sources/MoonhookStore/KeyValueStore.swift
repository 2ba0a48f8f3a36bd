import Foundation

/// Key-value storage for handlers, namespaced (moonhook uses one namespace per source).
///
/// Values are JSON text (any JSON value, scalars included), compared byte for byte by `cas`.
/// Expired keys are never returned; `purgeExpired` removes them for good. Every operation is atomic,
/// also across processes sharing one database.
public protocol KeyValueStore: Sendable {
    func get(_ namespace: String, _ key: String) async throws -> [UInt8]?
    func set(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws
    /// Whether a live key was removed.
    func delete(_ namespace: String, _ key: String) async throws -> Bool
    /// Adds `by` to the integer at `key` (0 when absent or expired) and returns the result. A new key
    /// gets `ttl`; an existing one keeps its expiry.
    func increment(_ namespace: String, _ key: String, by: Int64, ttl: Duration?) async throws -> Int64
    /// Sets `key` only if it has no live value; whether it did.
    func add(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Duration?) async throws -> Bool
    /// Sets `key` to `new` only if its live value is `expected` (nil: absent); whether it did.
    func compareAndSwap(_ namespace: String, _ key: String, expected: [UInt8]?, new: [UInt8], ttl: Duration?) async throws -> Bool
    /// Live keys starting with `prefix`, in key order, after `cursor`, at most `limit`.
    func list(_ namespace: String, prefix: String, limit: Int, after cursor: String?) async throws -> [(key: String, value: [UInt8])]
    /// Removes expired keys; returns how many.
    func purgeExpired() async throws -> Int
    /// Live keys of every namespace, in (namespace, key) order, after `cursor`, at most `limit`:
    /// what copying a store to another reads.
    func entries(after cursor: KeyValueEntry?, limit: Int) async throws -> [KeyValueEntry]
}

/// One key with its value and expiry, whatever its namespace.
public struct KeyValueEntry: Sendable, Equatable {
    public var namespace: String
    public var key: String
    public var value: [UInt8]
    public var expiresAt: Date?

    public init(namespace: String, key: String, value: [UInt8], expiresAt: Date?) {
        self.namespace = namespace
        self.key = key
        self.value = value
        self.expiresAt = expiresAt
    }
}

extension Duration {
    /// Whole milliseconds: how the stores keep times, and how durations are logged and shown.
    public var totalMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds: what timers and deadlines take.
    public var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
