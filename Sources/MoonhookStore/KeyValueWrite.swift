/// A handler's key-value write, and the one rule for what it does to a key: the embedded store
/// applies batches of them under its write lock (one read and one write per key, whatever the
/// number of operations on it), the memory store one at a time. PostgreSQL runs the same rule in
/// SQL (`moonhook_kv_write`).
public struct KeyValueWrite: Sendable {
    public enum Operation: Sendable {
        case set([UInt8], ttl: Duration?)
        case delete
        case increment(Int64, ttl: Duration?)
        case add([UInt8], ttl: Duration?)
        case compareAndSwap(expected: [UInt8], new: [UInt8], ttl: Duration?)
    }

    /// A key's value and expiry (Unix milliseconds).
    public struct Entry: Sendable, Equatable {
        public var value: [UInt8]
        public var expiresAt: Int64?
    }

    /// What the caller gets back.
    public enum Outcome: Sendable, Equatable {
        case done
        /// delete: a live key was removed; add, cas: the value was written.
        case flag(Bool)
        /// increment: the new value.
        case number(Int64)
    }

    public var namespace: String
    public var key: String
    public var operation: Operation

    public init(_ namespace: String, _ key: String, _ operation: Operation) {
        self.namespace = namespace
        self.key = key
        self.operation = operation
    }

    /// Applies the write to the key's live entry (nil: absent or expired) at `now`: the entry
    /// afterwards, and the outcome. An increment of a value that is not a JSON integer, or past 64
    /// bits, fails and changes nothing.
    public func apply(to live: Entry?, now: Int64) throws(StoreError) -> (Entry?, Outcome) {
        func expiry(_ ttl: Duration?) -> Int64? { ttl.map { now + $0.totalMilliseconds } }
        switch operation {
        case .set(let value, let ttl):
            return (Entry(value: value, expiresAt: expiry(ttl)), .done)
        case .delete:
            return (nil, .flag(live != nil))
        case .increment(let by, let ttl):
            guard let live else { return (Entry(value: Array(String(by).utf8), expiresAt: expiry(ttl)), .number(by)) }
            guard let base = Self.integer(live.value) else {
                throw StoreError(.notAnInteger, "the value at '\(key)' is not an integer")
            }
            let (sum, overflow) = base.addingReportingOverflow(by)
            if overflow { throw StoreError(.overflow, "adding \(by) to the value at '\(key)' overflows 64 bits") }
            return (Entry(value: Array(String(sum).utf8), expiresAt: live.expiresAt), .number(sum))
        case .add(let value, let ttl):
            guard live == nil else { return (live, .flag(false)) }
            return (Entry(value: value, expiresAt: expiry(ttl)), .flag(true))
        case .compareAndSwap(let expected, let new, let ttl):
            guard let live, live.value == expected else { return (live, .flag(false)) }
            return (Entry(value: new, expiresAt: expiry(ttl)), .flag(true))
        }
    }

    /// A JSON integer that fits 64 bits: `-?(0|[1-9][0-9]*)`, nothing around it.
    static func integer(_ bytes: [UInt8]) -> Int64? {
        var digits = bytes[...]
        if digits.first == UInt8(ascii: "-") { digits = digits.dropFirst() }
        guard let first = digits.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
            first != UInt8(ascii: "0") || digits.count == 1,
            digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }
}
