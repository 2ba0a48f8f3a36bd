import Foundation
import Logging
import MoonhookStore
import MoonhookTestSupport
import PostgresNIO
import Testing

@Suite("PostgreSQL store")
struct PostgresStoreTests {
    @Test func urlsAreReadAsLibpqReadsThem() throws {
        let full = try PostgresURL("postgres://hook%40ops:p%3Ass%2Fw@db.internal:6432/moonhook?sslmode=require")
        #expect(full.user == "hook@ops")
        #expect(full.password == "p:ss/w")
        #expect(full.host == "db.internal")
        #expect(full.port == 6432)
        #expect(full.database == "moonhook")
        #expect(full.tls == .require)
        #expect(!full.redacted.contains("p:ss") && !full.redacted.contains("p%3Ass"), "the password is in \(full.redacted)")

        let bare = try PostgresURL("postgresql://app@localhost")
        #expect(bare.port == 5432)
        #expect(bare.database == "app", "the database defaults to the user's name")
        #expect(bare.tls == .prefer)
        #expect(bare.password == nil)
        #expect(try PostgresURL("postgres://u@[::1]:5433/d?sslmode=disable").host == "::1")
        #expect(try PostgresURL("postgres://u@h/d?sslmode=verify-full").tls == .verifyFull)

        for (text, reason) in [
            ("postgres://u@h/d?sslmode=allow", "sslmode must be one of"),
            ("postgres://u@h/d?sslmod=require", "unknown parameter 'sslmod'"),
            ("postgres:///d", "names no host"),
            ("mysql://u@h/d", "not a postgres:// URL"),
        ] {
            #expect(throws: StoreError.self) { try PostgresURL(text) }
            do {
                _ = try PostgresURL(text)
            } catch {
                #expect(error.reason == .configuration)
                #expect(error.message.contains(reason), "\(text): \(error.message)")
            }
        }
    }

    @Test func anUnreachableDatabaseFailsWithinTheStoreTimeout() async throws {
        // A port nothing listens on: the open fails as unavailable, in about the store timeout.
        let clock = ContinuousClock()
        let started = clock.now
        await #expect(throws: StoreError.self) {
            _ = try await StoreLocation("postgres://moonhook@127.0.0.1:9/none?sslmode=disable").open(
                logger: Logger(label: "test"), options: StoreOptions(timeout: .seconds(1)))
        }
        // Alone it takes the timeout (1 s); with every suite sharing two cores, timers fire late. The
        // bound is what matters: PostgresNIO by itself would wait 60 s for its circuit breaker.
        #expect(clock.now - started < .seconds(45))
    }

    @Test(.enabled(if: TestPostgres.enabled)) func sslmodeRequireEncryptsTheConnection() async throws {
        let location = try await TestPostgres.database("sslmode=require")
        let store = try await StoreLocation(location).open(logger: Logger(label: "test"))
        try await store.set("s", "k", Array("1".utf8), ttl: nil)
        let name = String(URLComponents(string: location)!.path.dropFirst())
        let components = URLComponents(string: try #require(TestPostgres.url))!
        try await TestPostgres.admin(host: components.host!, port: components.port!) { client, logger in
            let rows = try await client.query(
                "SELECT count(*)::int8 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = \(name) AND s.ssl",
                logger: logger
            ).collect()
            #expect(try rows.first?.decode(Int64.self) ?? 0 > 0, "no encrypted connection to \(name)")
        }
        await store.close()
        await TestPostgres.drop(location)
    }

    /// Servers starting at once apply each migration once.
    @Test(.enabled(if: TestPostgres.enabled)) func concurrentStartsMigrateOnce() async throws {
        let location = try await TestPostgres.database()
        let stores = try await withThrowingTaskGroup(of: (any Store).self) { group in
            for _ in 0..<4 { group.addTask { try await StoreLocation(location).open(logger: Logger(label: "test")) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var versions: [Int] = []
        for store in stores { versions.append(try await store.schemaVersion()) }
        #expect(Set(versions).count == 1 && versions[0] > 0, "\(versions)")
        for store in stores { await store.close() }
        await TestPostgres.drop(location)
    }

    /// The retention sweep runs on one instance at a time: while another holds the sweep's lock,
    /// a sweep deletes nothing; once it is free, the sweep does its work. An operator's purge is
    /// not held back.
    @Test(.enabled(if: TestPostgres.enabled)) func retentionSweepsRunOneAtATime() async throws {
        let location = try await TestPostgres.database()
        let store = try await StoreLocation(location).open(logger: Logger(label: "test"))
        for index in 0..<3 {
            _ = try await store.append(
                InboxDelivery(source: "s", id: "d\(index)", type: "t", receivedAt: Date(), headers: [:], body: Array("{}".utf8), handlers: []),
                retention: .seconds(60), claimed: false, lease: .seconds(30))
        }
        let url = try #require(URLComponents(string: location))
        let name = String(url.path.dropFirst())
        let sweepLock = 0x6d6f_6f6e_686f_6f6b + 1
        try await TestPostgres.admin(host: url.host!, port: url.port!, database: name) { client, logger in
            try await client.withConnection { connection in
                _ = try await connection.query("SELECT pg_advisory_lock(\(Int64(sweepLock)))", logger: logger).collect()
                #expect(try await store.purge(DeliveryFilter(), onlyFinished: true) == 0, "a sweep ran while another instance held the lock")
                _ = try await connection.query("SELECT pg_advisory_unlock(\(Int64(sweepLock)))", logger: logger).collect()
            }
        }
        #expect(try await store.purge(DeliveryFilter(), onlyFinished: true) == 3)
        await store.close()
        await TestPostgres.drop(location)
    }
}
