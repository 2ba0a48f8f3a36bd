import LuaRuntime
import MoonhookStore

/// `kv` for handlers: key-value storage namespaced per source, so a handler never sees another
/// source's keys. Every call waits for the store without blocking a thread.
///
/// Values are strings, numbers (integers stay integers), booleans or tables, stored as JSON.
public enum KVAPI {
    /// Longest key, in bytes.
    public static let maxKeyBytes = 512
    /// Largest value, as JSON, in bytes.
    public static let maxValueBytes = 256 * 1024
    /// Most keys one `kv.list` returns.
    public static let maxListLimit = 1000
    /// Longest `ttl`, in seconds (ten years).
    public static let maxTTLSeconds: Int64 = 10 * 365 * 86_400

    public static func library(store: any KeyValueStore, metrics: ServerMetrics? = nil) -> LuaLibrary {
        /// Runs a store operation, counted by operation and outcome.
        @Sendable func run<T>(call name: String, _ operation: () async throws -> T) async throws -> T {
            do {
                let value = try await KVAPI.run(call: name, operation)
                metrics?.keyValue(operation: String(name.dropFirst(3)), ok: true)
                return value
            } catch {
                metrics?.keyValue(operation: String(name.dropFirst(3)), ok: false)
                throw error
            }
        }
        var kv = LuaLibrary(name: "kv")
        kv.function("get", "fun(key: string): any", "The value of key, or nil when absent or expired") { call in
            let (namespace, key) = try target(&call)
            return .suspend { _ in
                guard let value = try await run(call: "kv.get", { try await store.get(namespace, key) }) else { return [.nil] }
                return [.json(value)]
            }
        }
        kv.function("set", "fun(key: string, value: any, options?: {ttl?: number})", "Sets key to value (a string, number, boolean or table), expiring after ttl seconds") { call in
            let (namespace, key) = try target(&call)
            let value = try encode(&call, 2)
            let ttl = try options(&call, 3)
            return .suspend { _ in
                try await run(call: "kv.set") { try await store.set(namespace, key, value, ttl: ttl) }
                return []
            }
        }
        kv.function("delete", "fun(key: string): boolean", "Removes key; whether a live key was removed") { call in
            let (namespace, key) = try target(&call)
            return .suspend { _ in [.boolean(try await run(call: "kv.delete") { try await store.delete(namespace, key) })] }
        }
        kv.function("incr", "fun(key: string, by?: integer, options?: {ttl?: number}): integer", "Adds by (default 1) to the integer at key (absent: 0), atomically; the new value") { call in
            let (namespace, key) = try target(&call)
            let by = call.isNil(2) ? 1 : try call.integer(2)
            let ttl = try options(&call, 3)
            return .suspend { _ in [.integer(try await run(call: "kv.incr") { try await store.increment(namespace, key, by: by, ttl: ttl) })] }
        }
        kv.function("add", "fun(key: string, value: any, options?: {ttl?: number}): boolean", "Sets key only if it is absent; whether it did") { call in
            let (namespace, key) = try target(&call)
            let value = try encode(&call, 2)
            let ttl = try options(&call, 3)
            return .suspend { _ in [.boolean(try await run(call: "kv.add") { try await store.add(namespace, key, value, ttl: ttl) })] }
        }
        kv.function("cas", "fun(key: string, old: any, new: any, options?: {ttl?: number}): boolean", "Sets key to new only if its value is old (nil: absent); whether it did") { call in
            let (namespace, key) = try target(&call)
            let expected = call.isNil(2) ? nil : try encode(&call, 2)
            let new = try encode(&call, 3)
            let ttl = try options(&call, 4)
            return .suspend { _ in
                [.boolean(try await run(call: "kv.cas") { try await store.compareAndSwap(namespace, key, expected: expected, new: new, ttl: ttl) })]
            }
        }
        kv.function("list", "fun(prefix: string, options?: {limit?: integer, cursor?: string}): {items: {key: string, value: any}[], cursor: string?}", "Keys starting with prefix, in order, a page at a time; pass cursor back for the next page") { call in
            let (namespace, prefix) = try target(&call, allowEmpty: true)
            var limit = 100
            var cursor: String?
            if !call.isNil(2) {
                guard case .table(_, let fields) = try call.value(2) else { throw LuaHostError("kv.list: options must be a table") }
                if let value = fields["limit"] {
                    guard case .integer(let number) = value, (1...Int64(maxListLimit)).contains(number) else {
                        throw LuaHostError("kv.list: limit must be a whole number from 1 to \(maxListLimit)")
                    }
                    limit = Int(number)
                }
                if let value = fields["cursor"] {
                    guard let text = value.text else { throw LuaHostError("kv.list: cursor must be a string") }
                    cursor = text
                }
            }
            return .suspend { [limit, cursor] _ in
                let items = try await run(call: "kv.list") { try await store.list(namespace, prefix: prefix, limit: limit + 1, after: cursor) }
                let page = items.prefix(limit)
                let entries: [LuaValue] = page.map { .table(array: [], fields: ["key": .string($0.key), "value": .json($0.value)]) }
                var result: [String: LuaValue] = ["items": .table(array: entries, fields: [:])]
                if items.count > limit, let last = page.last { result["cursor"] = .string(last.key) }
                return [.table(array: [], fields: result)]
            }
        }
        return kv
    }

    /// The source's namespace and the key argument, checked.
    private static func target(_ call: inout LuaCall, allowEmpty: Bool = false) throws -> (String, String) {
        guard let source = call.handlerContext?.source else {
            throw LuaHostError("\(call.functionName) is available inside a handler call, not while its file loads")
        }
        let key = try call.string(1)
        guard allowEmpty || !key.isEmpty else { throw LuaHostError("\(call.functionName): the key is empty") }
        guard key.utf8.count <= maxKeyBytes else { throw LuaHostError("\(call.functionName): key longer than \(maxKeyBytes) bytes") }
        return (source, key)
    }

    private static func encode(_ call: inout LuaCall, _ index: Int) throws -> [UInt8] {
        guard !call.isNil(index) else { throw LuaHostError("\(call.functionName): value #\(index) is nil (use kv.delete to remove a key)") }
        let bytes = try call.json(index)
        guard bytes.count <= maxValueBytes else {
            throw LuaHostError("\(call.functionName): value of \(bytes.count) bytes exceeds the limit of \(maxValueBytes) bytes")
        }
        return bytes
    }

    /// `{ttl = seconds}` at `index`, if given.
    private static func options(_ call: inout LuaCall, _ index: Int) throws -> Duration? {
        guard !call.isNil(index) else { return nil }
        guard case .table(_, let fields) = try call.value(index) else { throw LuaHostError("\(call.functionName): options must be a table") }
        guard let ttl = fields["ttl"] else { return nil }
        guard let seconds = ttl.positiveSeconds(atMost: maxTTLSeconds) else {
            throw LuaHostError("\(call.functionName): ttl must be a positive number of seconds, at most \(maxTTLSeconds)")
        }
        return seconds
    }

    /// Runs a store operation, turning its failure into a one-line Lua error.
    private static func run<T>(call name: String, _ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error as StoreError {
            throw LuaHostError("\(name): \(error.message)")
        } catch let error as LuaHostError {
            throw error
        } catch {
            throw LuaHostError("\(name): \(error)")
        }
    }
}
