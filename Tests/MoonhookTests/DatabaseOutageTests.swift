import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing

/// A PostgreSQL server that stops under a running moonhook and comes back: nothing acknowledged is
/// lost, senders get 503 with a one-line reason while it is gone, `/readyz` follows it within
/// seconds, and everything resumes without a restart.
@Suite("A database that goes away", .serialized)
struct DatabaseOutageTests {
    static func ready(_ client: any TestClientProtocol) async throws -> (Bool, String) {
        let response = try await client.execute(uri: "/readyz", method: .get)
        return (response.status == .ok, String(buffer: response.body))
    }

    /// Polls `/readyz` until it says `ready`; how long that took, or nil after `limit`.
    static func readiness(_ client: any TestClientProtocol, becomes ready: Bool, within limit: Duration) async throws -> Duration? {
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < limit {
            if try await Self.ready(client).0 == ready { return clock.now - start }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    @Test(.enabled(if: TestPostgres.enabled)) func appendsAnswer503WhileItIsGoneAndWorkResumes() async throws {
        guard TestPostgres.url != nil else { throw TestPostgres.Missing() }
        let cluster = try TestPostgresCluster.start()
        defer { cluster.stop() }
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/ping.lua", "return function(e) kv.incr('ran:' .. e.id) log.info('ran', {id = e.id}) end")
        // Works past the outage's start: its kv call fails as a Lua error, the failure is recorded
        // once the database is back, and the retry runs.
        try handlers.write(
            "s/slow.lua", "return { retries = 5, retry_delay = 0.2, handle = function(e) time.sleep(1500) kv.incr('ran:' .. e.id) end }")
        var configuration = Server.configuration(handlers)
        configuration.store = cluster.url
        configuration.deliveries.storeTimeout = .seconds(3)
        configuration.deliveries.pollInterval = .milliseconds(200)
        configuration.deliveries.lease = .seconds(5)
        let records = LogRecords()
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            #expect(try await Self.ready(client) == (true, #"{"ready":true}"# + "\n"))
            #expect(try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"before"}"#).status == .accepted)
            #expect(await Server.eventually { records.all.contains { $0.message == "ran" && $0.metadata["id"] == "before" } })
            #expect(try await DeliveryTests.post(client, "s", #"{"type":"slow","id":"slow"}"#).status == .accepted)

            try cluster.pause()
            let down = try await Self.readiness(client, becomes: false, within: .seconds(5))
            #expect(down != nil, "/readyz still said ready 5 s after the database stopped")
            let (_, reason) = try await Self.ready(client)
            #expect(reason.contains("the store does not take writes"), "\(reason)")
            let clock = ContinuousClock()
            let asked = clock.now
            let refused = try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"during"}"#)
            #expect(refused.status == .serviceUnavailable)
            let body = String(buffer: refused.body)
            #expect(body.hasPrefix("cannot store the delivery: ") && body.filter { $0 == "\n" }.count == 1, "\(body)")
            #expect(clock.now - asked < .seconds(5), "the 503 took \(clock.now - asked); the store timeout is 3 s")
            #expect(await Server.eventually({ records.all.contains { $0.message == "handler failed, will retry" } }, within: .seconds(5)))

            try cluster.resume()
            let up = try await Self.readiness(client, becomes: true, within: .seconds(5))
            #expect(up != nil, "/readyz did not say ready again within 5 s of the database's return")
            let accepted = try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"during"}"#)
            #expect(accepted.status == .accepted, "\(String(buffer: accepted.body))")
            #expect(await Server.eventually({ records.all.contains { $0.message == "ran" && $0.metadata["id"] == "during" } }, within: .seconds(10)))
            #expect(await Server.eventually({ records.all.contains { $0.message == "handler succeeded" && $0.metadata["handler.path"] == "s/slow.lua" } }, within: .seconds(15)))
        }
        let store = try await StoreLocation(cluster.url).open(logger: LogRecords().logger())
        for id in ["before", "during", "slow"] {
            #expect(try await store.get("s", "ran:\(id)") == Array("1".utf8), "\(id) did not run exactly once")
        }
        await store.close()
    }
}
