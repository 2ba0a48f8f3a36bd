import Foundation
import Logging
import MoonhookStore
import MoonhookTestSupport
import Synchronization
import Testing

/// Where key-value tests run: every store engine, and the in-memory store of `moonhook test`.
enum KeyValueEngine: Sendable, CustomTestStringConvertible {
    case store(StoreEngine)
    case memory

    static let all: [KeyValueEngine] = StoreEngine.all.map(KeyValueEngine.store) + [.memory]

    var testDescription: String {
        switch self {
        case .store(let engine): engine.rawValue
        case .memory: "memory"
        }
    }

    /// A fresh store and what removes it.
    func make(clock: TestClock = TestClock()) async throws -> (any KeyValueStore, @Sendable () async -> Void) {
        switch self {
        case .store(let engine):
            let made = try await engine.make(clock: clock.clock)
            return (made.store, { await made.remove() })
        case .memory:
            return (MemoryKeyValueStore(clock: { clock.clock.milliseconds() }), {})
        }
    }
}

@Suite("Key-value storage")
struct KeyValueStoreTests {
    @Test(arguments: KeyValueEngine.all) func basicOperations(engine: KeyValueEngine) async throws {
        let name = engine.testDescription
        let (store, close) = try await engine.make()
        do {
            #expect(try await store.get("a", "k") == nil, "\(name)")
            try await store.set("a", "k", bytes("\"v\""), ttl: nil)
            #expect(try await store.get("a", "k") == bytes("\"v\""), "\(name)")
            #expect(try await store.get("b", "k") == nil, "\(name): namespaces are separate")
            #expect(try await store.delete("a", "k"), "\(name)")
            #expect(try await store.delete("a", "k") == false, "\(name)")
            #expect(try await store.add("a", "once", bytes("true"), ttl: nil), "\(name)")
            #expect(try await store.add("a", "once", bytes("false"), ttl: nil) == false, "\(name)")
            #expect(try await store.get("a", "once") == bytes("true"), "\(name)")
            #expect(try await store.compareAndSwap("a", "once", expected: bytes("false"), new: bytes("1"), ttl: nil) == false, "\(name)")
            #expect(try await store.compareAndSwap("a", "once", expected: bytes("true"), new: bytes("1"), ttl: nil), "\(name)")
            #expect(try await store.compareAndSwap("a", "fresh", expected: nil, new: bytes("1"), ttl: nil), "\(name)")
            #expect(try await store.increment("a", "n", by: 5, ttl: nil) == 5, "\(name)")
            #expect(try await store.increment("a", "n", by: -7, ttl: nil) == -2, "\(name)")
            #expect(try await store.increment("a", "once", by: 1, ttl: .seconds(1)) == 2, "\(name): cas stored the integer 1")
            try await store.set("a", "text", bytes("\"12\""), ttl: nil)
            await #expect(throws: StoreError.self, "\(name): a string is not an integer") { _ = try await store.increment("a", "text", by: 1, ttl: nil) }
            try await store.set("a", "max", bytes(String(Int64.max)), ttl: nil)
            await #expect(throws: StoreError.self, "\(name): overflow") { _ = try await store.increment("a", "max", by: 1, ttl: nil) }
        }
        await close()
    }

    @Test(arguments: KeyValueEngine.all) func expiredKeysAreNeverReturned(engine: KeyValueEngine) async throws {
        let name = engine.testDescription
        let time = TestClock()
        let (store, close) = try await engine.make(clock: time)
        do {
            try await store.set("a", "short", bytes("1"), ttl: .milliseconds(300))
            try await store.set("a", "long", bytes("1"), ttl: .seconds(60))
            #expect(try await store.get("a", "short") == bytes("1"), "\(name)")
            time.advance(by: .milliseconds(400))
            #expect(try await store.get("a", "short") == nil, "\(name)")
            #expect(try await store.add("a", "short", bytes("2"), ttl: nil), "\(name): an expired key can be added again")
            try await store.set("a", "gone", bytes("5"), ttl: .milliseconds(100))
            time.advance(by: .milliseconds(200))
            #expect(try await store.increment("a", "gone", by: 1, ttl: nil) == 1, "\(name): an expired counter starts over")
            try await store.set("a", "purge", bytes("1"), ttl: .milliseconds(50))
            time.advance(by: .milliseconds(100))
            #expect(try await store.list("a", prefix: "", limit: 10, after: nil).map(\.key) == ["gone", "long", "short"], "\(name)")
            #expect(try await store.purgeExpired() == 1, "\(name)")
        }
        await close()
    }

    @Test(arguments: KeyValueEngine.all) func listPagesInKeyOrder(engine: KeyValueEngine) async throws {
        let name = engine.testDescription
        let (store, close) = try await engine.make()
        do {
            for index in 0..<25 { try await store.set("a", String(format: "user:%02d", index), bytes(String(index)), ttl: nil) }
            try await store.set("a", "other", bytes("0"), ttl: nil)
            try await store.set("b", "user:99", bytes("0"), ttl: nil)
            var keys: [String] = []
            var cursor: String?
            repeat {
                let page = try await store.list("a", prefix: "user:", limit: 10, after: cursor)
                keys += page.map(\.key)
                cursor = page.count == 10 ? page.last?.key : nil
            } while cursor != nil
            #expect(keys == (0..<25).map { String(format: "user:%02d", $0) }, "\(name)")
        }
        await close()
    }

    /// `entries` walks every namespace in (namespace, key) order, a page at a time, live keys only.
    @Test(arguments: KeyValueEngine.all) func entriesWalkEveryNamespace(engine: KeyValueEngine) async throws {
        let name = engine.testDescription
        let time = TestClock()
        let (store, close) = try await engine.make(clock: time)
        do {
            for namespace in ["b", "a"] {
                for index in 0..<3 { try await store.set(namespace, "k\(index)", bytes("\(index)"), ttl: index == 2 ? .seconds(60) : nil) }
            }
            try await store.set("a", "gone", bytes("0"), ttl: .milliseconds(10))
            time.advance(by: .seconds(1))
            var seen: [String] = []
            var cursor: KeyValueEntry?
            repeat {
                let page = try await store.entries(after: cursor, limit: 4)
                seen += page.map { "\($0.namespace)/\($0.key)" }
                cursor = page.count == 4 ? page.last : nil
            } while cursor != nil
            #expect(seen == ["a/k0", "a/k1", "a/k2", "b/k0", "b/k1", "b/k2"], "\(name): \(seen)")
            let expiring = try await store.entries(after: nil, limit: 10).first { $0.key == "k2" }
            #expect(expiring?.expiresAt != nil && expiring?.value == bytes("2"), "\(name)")
        }
        await close()
    }

    @Test(arguments: StoreEngine.all) func survivesAReopenAndRecordsItsSchema(engine: StoreEngine) async throws {
        let made = try await engine.make()
        try await made.store.set("s", "kept", bytes("{\"a\":[1,2]}"), ttl: nil)
        let version = try await made.store.schemaVersion()
        #expect(version > 0)
        let second = try await made.another()
        #expect(try await second.get("s", "kept") == bytes("{\"a\":[1,2]}"))
        #expect(try await second.schemaVersion() == version)
        await second.close()
        await made.remove()
    }

    /// Many concurrent increments through separate connections (the way separate processes share
    /// the database) lose no update. What this checks is atomicity, not waiting: SQLite's write lock
    /// is not handed out in turn, and four writers kept busy on a loaded machine can make one wait
    /// past the default store timeout (docs/scaling.md), so the timeout here is long.
    @Test(arguments: StoreEngine.all) func concurrentIncrementsLoseNothing(engine: StoreEngine) async throws {
        let made = try await engine.make(timeout: .seconds(60))
        var stores: [any Store] = [made.store]
        for _ in 0..<3 { stores.append(try await made.another()) }
        let connections = stores
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for store in connections {
                    for _ in 0..<8 {
                        group.addTask {
                            for _ in 0..<50 { _ = try await store.increment("s", "counter", by: 1, ttl: nil) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await stores[0].get("s", "counter") == bytes("1600"))
        } catch {
            Issue.record("an increment failed: \(error)")
        }
        for store in stores.dropFirst() { await store.close() }
        await made.remove()
    }
}

/// Handlers' key-value writes join the group commit: concurrent writes share transactions, each
/// gets its own result only once committed, and one that fails fails alone.
@Suite("Key-value writes in the group commit")
struct KeyValueGroupCommitTests {
    /// 300 concurrent increments of one key, with appends and other writes between them: fewer
    /// batches than writes, every increment saw a different value, and the last is 300.
    @Test(arguments: StoreEngine.all) func concurrentWritesShareBatches(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        let values = try await withThrowingTaskGroup(of: Int64?.self) { group in
            for index in 0..<300 {
                group.addTask { try await store.increment("s", "counter", by: 1, ttl: nil) }
                if index % 3 == 0 {
                    group.addTask {
                        try await store.set("s", "key\(index)", bytes("\(index)"), ttl: nil)
                        return nil
                    }
                    group.addTask {
                        _ = try await store.append(
                            InboxDelivery(source: "s", id: "d\(index)", type: "t", receivedAt: Date(), headers: [:], body: [], handlers: ["s/t.lua"]),
                            retention: .seconds(3600), claimed: false, lease: .seconds(30))
                        return nil
                    }
                }
            }
            return try await group.reduce(into: [Int64]()) { if let value = $1 { $0.append(value) } }
        }
        #expect(values.sorted() == Array(1...300), "increments returned the same value twice, or skipped one")
        #expect(try await store.get("s", "counter") == bytes("300"))
        #expect(try await store.get("s", "key99") == bytes("99"))
        let statistics = store.writeStatistics
        #expect(statistics.writes >= 500, "\(statistics)")
        #expect(statistics.batches < statistics.writes / 2, "the writes did not share batches: \(statistics)")
        await made.remove()
    }

    /// Increments of a string, sent with many good writes at once, fail alone: every other write
    /// of their batches commits.
    @Test(arguments: StoreEngine.all) func aFailingWriteFailsOnlyItsOwnCall(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        try await store.set("s", "text", bytes("\"not a number\""), ttl: nil)
        try await store.set("s", "max", bytes(String(Int64.max)), ttl: nil)
        let outcomes = try await withThrowingTaskGroup(of: (String, Result<Int64, StoreError>).self) { group in
            for index in 0..<200 {
                let key = index % 20 == 0 ? "text" : index % 20 == 10 ? "max" : "good\(index % 5)"
                group.addTask {
                    do {
                        return (key, .success(try await store.increment("s", key, by: 1, ttl: nil)))
                    } catch let error as StoreError {
                        return (key, .failure(error))
                    }
                }
            }
            return try await group.reduce(into: [(String, Result<Int64, StoreError>)]()) { $0.append($1) }
        }
        for (key, outcome) in outcomes {
            switch (key, outcome) {
            case ("text", .failure(let error)):
                #expect(error.reason == .notAnInteger, "\(error)")
            case ("max", .failure(let error)):
                #expect(error.reason == .overflow || error.reason == .notAnInteger, "\(error)")
            case ("text", .success), ("max", .success):
                Issue.record("an increment of \(key) succeeded")
            case (_, .failure(let error)):
                Issue.record("a good increment of \(key) failed: \(error)")
            case (_, .success):
                break
            }
        }
        var expected: [String: Int] = [:]
        for (key, outcome) in outcomes where key.hasPrefix("good") {
            if case .success = outcome { expected[key, default: 0] += 1 }
        }
        #expect(expected.values.reduce(0, +) == 180)
        for (key, count) in expected { #expect(try await store.get("s", key) == bytes("\(count)"), "\(key)") }
        #expect(try await store.get("s", "text") == bytes("\"not a number\""))
        #expect(try await store.get("s", "max") == bytes(String(Int64.max)))
        #expect(store.writeStatistics.largestBatch > 1, "the failing writes never shared a batch: \(store.writeStatistics)")
        await made.remove()
    }

    /// Reads have a connection of their own: while another connection holds the database's write
    /// lock, a write waits for it and a read of the same key still answers, with the value before.
    @Test(arguments: StoreEngine.all) func readsDoNotQueueBehindTheWriter(engine: StoreEngine) async throws {
        let made = try await engine.make(timeout: .seconds(30))
        let store = made.store
        try await store.set("s", "key", bytes("1"), ttl: nil)
        let written = Flag()
        do {
            try await made.holdingTheWriteLock {
                Task {
                    try await store.set("s", "key", bytes("2"), ttl: nil)
                    written.set()
                }
                try await Task.sleep(for: .milliseconds(300))
                #expect(!written.value, "the write did not wait for the lock: the test holds none")
                #expect(try await store.get("s", "key") == bytes("1"))
                #expect(try await store.list("s", prefix: "", limit: 10, after: nil).map { $0.key } == ["key"])
                #expect(!written.value, "the read answered only after the write")
            }
            for _ in 0..<300 where !written.value { try await Task.sleep(for: .milliseconds(10)) }
            #expect(written.value, "the write never finished once the lock was let go")
            #expect(try await store.get("s", "key") == bytes("2"))
        } catch {
            await made.remove()
            throw error
        }
        await made.remove()
    }

    /// Closing lets the writes already queued finish and fails later ones at once, with a reason:
    /// none waits for a writer that is gone. Every write that returned is in the database.
    @Test(.timeLimit(.minutes(1)), arguments: StoreEngine.all) func writesAfterCloseFailAtOnce(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        try await store.set("s", "n", bytes("0"), ttl: nil)
        let writes = Task {
            await withTaskGroup(of: Result<Int64, Error>.self) { group in
                for _ in 0..<1000 {
                    group.addTask {
                        do { return .success(try await store.increment("s", "n", by: 1, ttl: nil)) } catch { return .failure(error) }
                    }
                }
                return await group.reduce(into: [Result<Int64, Error>]()) { $0.append($1) }
            }
        }
        // Close while the increments are on their way: some are written, the rest refused.
        await Task.yield()
        await store.close()
        let results = await writes.value
        let done = results.filter { if case .success = $0 { true } else { false } }.count
        for case .failure(let error) in results {
            #expect((error as? StoreError)?.reason == .unavailable, "\(error)")
        }
        await #expect(throws: StoreError.self) { try await store.set("s", "after", bytes("1"), ttl: nil) }
        let again = try await made.another()
        #expect(try await again.get("s", "n") == bytes("\(done)"), "\(done) increments returned")
        #expect(try await again.get("s", "after") == nil)
        await again.close()
        await made.remove()
    }

    /// A caller reads what its own write returned for, at once, on the reading connection.
    @Test(arguments: StoreEngine.all) func aWriteIsReadBackAtOnce(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<16 {
                group.addTask {
                    for step in 0..<20 {
                        let key = "t\(task)"
                        try await store.set("s", key, bytes("\(step)"), ttl: nil)
                        let read = try await store.get("s", key)
                        if read != bytes("\(step)") { Issue.record("\(key) read \(read.map { String(decoding: $0, as: UTF8.self) } ?? "nil") after writing \(step)") }
                        #expect(try await store.increment("s", "n\(task)", by: 1, ttl: nil) == Int64(step + 1))
                    }
                }
            }
            try await group.waitForAll()
        }
        await made.remove()
    }
}

/// A flag one task sets and another reads.
final class Flag: Sendable {
    private let state = Mutex(false)

    var value: Bool { state.withLock { $0 } }

    func set() { state.withLock { $0 = true } }
}
