import Foundation
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import Testing

/// Several instances on one PostgreSQL database: work that one of them makes due starts on
/// another at once (LISTEN/NOTIFY), not at its next poll.
@Suite("Wake-ups between instances")
struct InstanceWakeupTests {
    @Test(.enabled(if: TestPostgres.enabled)) func workMadeDueElsewhereStartsWithinASecond() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/ping.lua", "return function(e) log.info('ran', {id = e.id, attempt = e.attempt}) end")
        var configuration = Server.configuration(handlers)
        configuration.store = try await TestPostgres.database()
        // Polling alone would take a minute.
        configuration.deliveries.pollInterval = .seconds(60)
        let records = LogRecords()
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: records.logger())
        // Another instance, as far as this one can tell: only its store.
        let other = try await StoreLocation(configuration.store).open(logger: LogRecords().logger())
        try await app.test(.live) { _ in
            // The first poll runs at start; give the listener its connection.
            try await Task.sleep(for: .seconds(1))
            let clock = ContinuousClock()
            let delivery = InboxDelivery(
                source: "s", id: "elsewhere", type: "ping", receivedAt: Date(), headers: [:], body: Array(#"{"type":"ping","id":"elsewhere"}"#.utf8),
                handlers: ["s/ping.lua"])
            var started = clock.now
            guard case .accepted(let seq) = try await other.append(delivery, retention: .seconds(3600), claimed: false, lease: .seconds(30)) else {
                Issue.record("not stored")
                return
            }
            #expect(await Server.eventually({ records.all.contains { $0.message == "ran" } }, within: .seconds(5)))
            let stored = clock.now - started
            #expect(stored < .seconds(1), "a delivery stored elsewhere started after \(stored)")

            started = clock.now
            #expect(try await other.replay(.delivery(seq)) == 1)
            #expect(await Server.eventually({ records.all.filter { $0.message == "ran" }.count == 2 }, within: .seconds(5)))
            let replayed = clock.now - started
            #expect(replayed < .seconds(1), "a replay made elsewhere started after \(replayed)")
        }
        await other.close()
        await TestPostgres.drop(configuration.store)
    }
}

/// A handler's `concurrency` holds across instances sharing a PostgreSQL database.
@Suite("Limits across instances")
struct InstanceLimitTests {
    @Test(.enabled(if: TestPostgres.enabled)) func aHandlersConcurrencyHoldsAcrossInstances() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write(
            "s/slow.lua",
            """
            return { concurrency = 1, handle = function(e)
              local now = kv.incr('active')
              if now > (kv.get('most') or 0) then kv.set('most', now) end
              time.sleep(100)
              kv.incr('active', -1)
              kv.incr('done')
            end }
            """)
        var configuration = DeliveryTests.configurationWithoutStore(handlers)
        configuration.store = try await TestPostgres.database()
        configuration.deliveries.pollInterval = .milliseconds(100)
        let first = LogRecords()
        let second = LogRecords()
        let one = try await buildApplication(configuration: configuration, environment: [:], logger: first.logger())
        let two = try await buildApplication(configuration: configuration, environment: [:], logger: second.logger())
        try await one.test(.live) { a in
            try await two.test(.live) { (b: any TestClientProtocol) async throws in
                for index in 0..<5 {
                    #expect(try await DeliveryTests.post(a, "s", #"{"type":"slow","n":\#(index)}"#).status == .accepted)
                    #expect(try await DeliveryTests.post(b, "s", #"{"type":"slow","n":\#(index + 5)}"#).status == .accepted)
                }
                #expect(await Server.eventually({
                    (first.all + second.all).filter { $0.message == "handler succeeded" }.count == 10
                }, within: .seconds(20)))
            }
        }
        let ran = (first.all.filter { $0.message == "handler succeeded" }.count, second.all.filter { $0.message == "handler succeeded" }.count)
        print("handled by each instance: \(ran)")
        let store = try await StoreLocation(configuration.store).open(logger: LogRecords().logger())
        #expect(try await store.get("s", "done") == Array("10".utf8))
        #expect(try await store.get("s", "most") == Array("1".utf8), "more than one invocation at once across the two instances")
        await store.close()
        await TestPostgres.drop(configuration.store)
    }
}
