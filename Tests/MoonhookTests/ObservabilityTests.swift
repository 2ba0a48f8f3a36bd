import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing

/// `/metrics`, kept refusals and dead-letter alerts, through a real server.
@Suite("Observability", .timeLimit(.minutes(2)))
struct ObservabilityTests {
    static let token = "obs-token-0123456789"

    /// Source `s` (no verification; `ok.lua` counts with kv, `bad.lua` fails without retries) and
    /// source `t` (a token in a header).
    static func handlers() throws -> TestHandlers {
        let handlers = try TestHandlers(copyExamples: false)
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/ok.lua", "return function(e) kv.incr('seen') end\n")
        try handlers.write("s/bad.lua", "return { retries = 0, handle = function(e) error('upstream 500') end }\n")
        try handlers.write("t/source.yaml", "scheme: token\ntoken: header:X-Token\nsecrets:\n  - \(token)\nid: /id\n")
        try handlers.write("t/ok.lua", "return function(e) end\n")
        return handlers
    }

    static func configuration(_ handlers: TestHandlers, _ engine: StoreEngine) async throws -> ServerConfiguration {
        var configuration = try await DeliveryTests.configuration(handlers, engine)
        // Counts are exact only if nothing runs twice: no lease may run out on a loaded machine.
        configuration.deliveries.lease = .seconds(60)
        configuration.metrics.storeInterval = .milliseconds(100)
        configuration.maxBodyBytes = 4096
        return configuration
    }

    static func post(_ client: any TestClientProtocol, _ source: String, _ body: String, headers: HTTPFields = [.contentType: "application/json"]) async throws
        -> TestResponse
    {
        try await client.execute(uri: "/hooks/\(source)", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    /// Scrapes until `condition` holds, for at most about ten seconds, then once more through
    /// prometheus_client's parser, whose reading the test then checks.
    static func scrapeUntil(_ client: any TestClientProtocol, _ condition: (MetricsSamples) -> Bool) async throws -> MetricsSamples {
        for _ in 0..<100 {
            if condition(try await MetricsSamples.scrape(client, polling: true)) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await MetricsSamples.scrape(client)
    }

    /// What a test posted is what `/metrics` counts: answers by source and status, refusals by
    /// reason (an unknown source under `_unknown`, never its own name), invocations by outcome,
    /// kv calls, dead letters, appends, and the store's pairs by state.
    @Test(arguments: StoreEngine.all) func countsMatchWhatWasPosted(engine: StoreEngine) async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        let app = try await buildApplication(
            configuration: try await Self.configuration(handlers, engine), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            for index in 0..<5 { #expect(try await Self.post(client, "s", #"{"type":"ok","id":"ok-\#(index)"}"#).status == .accepted) }
            for index in 0..<2 { #expect(try await Self.post(client, "s", #"{"type":"bad","id":"bad-\#(index)"}"#).status == .accepted) }
            #expect(try await Self.post(client, "s", #"{"type":"ok","id":"ok-0"}"#).status == .ok, "a duplicate")
            let wrong: HTTPFields = [.contentType: "application/json", HTTPField.Name("X-Token")!: "wrong"]
            for index in 0..<3 { #expect(try await Self.post(client, "t", #"{"type":"ok","id":"t-\#(index)"}"#, headers: wrong).status == .unauthorized) }
            #expect(try await Self.post(client, "no-such-source-4711", "{}").status == .notFound)
            #expect(try await Self.post(client, "s", #"{"type":"ok","#).status == .badRequest)
            #expect(try await Self.post(client, "s", #"{"id":"x"}"#).status == .badRequest)
            #expect(try await Self.post(client, "s", String(repeating: "x", count: 5000)).status == .contentTooLarge)
            #expect(try await Self.post(client, "s", "a=1", headers: [.contentType: "text/plain"]).status == .unsupportedMediaType)
            #expect(try await Self.post(client, "s", #"{"type":"moonhook.dead","id":"forged"}"#).status == .badRequest)
            #expect(try await Self.post(client, "s", #"{"type":"ok","id":"moonhook.dead:1:s/ok.lua:1"}"#).status == .badRequest, "an alert's id")

            let samples = try await Self.scrapeUntil(client) {
                $0.sum("moonhook_invocations_total", ["source": "s"]) >= 7 && $0.sum("moonhook_pairs", ["source": "s", "state": "dead"]) >= 2
            }
            #expect(samples.sum("moonhook_requests_total", ["source": "s", "status": "202"]) == 7)
            #expect(samples.sum("moonhook_requests_total", ["source": "s", "status": "200"]) == 1)
            #expect(samples.sum("moonhook_requests_total", ["source": "t", "status": "401"]) == 3)
            #expect(samples.sum("moonhook_requests_total", ["source": "_unknown", "status": "404"]) == 1)
            #expect(samples.sum("moonhook_requests_total") == 18)
            #expect(!samples.values(of: "source").contains("no-such-source-4711"), "an unknown source's name never becomes a label")
            #expect(samples.sum("moonhook_refusals_total", ["source": "t", "reason": "signature"]) == 3)
            #expect(samples.sum("moonhook_refusals_total", ["source": "_unknown", "reason": "source"]) == 1)
            #expect(samples.sum("moonhook_refusals_total", ["source": "s", "reason": "body"]) == 2, "broken JSON, and a reserved id")
            #expect(samples.sum("moonhook_refusals_total", ["source": "s", "reason": "type"]) == 2, "no type, and the reserved moonhook.dead")
            #expect(samples.sum("moonhook_refusals_total", ["source": "s", "reason": "size"]) == 1)
            #expect(samples.sum("moonhook_refusals_total", ["source": "s", "reason": "content_type"]) == 1)
            #expect(samples.sum("moonhook_refusals_total") == 10)
            // Served sources' counters exist at zero before their first event, so that Prometheus
            // sees the first one as an increase.
            #expect(samples.matching("moonhook_dead_letters_total", ["source": "t", "handler": "t/ok.lua"]).map(\.value) == [0])
            #expect(samples.matching("moonhook_refusals_total", ["source": "t", "reason": "timestamp"]).map(\.value) == [0])
            #expect(samples.matching("moonhook_reload_failures_total", ["source": "s"]).map(\.value) == [0])
            #expect(samples.sum("moonhook_request_body_bytes_total", ["source": "s"]) > 0)
            #expect(samples.sum("moonhook_invocations_total", ["source": "s", "handler": "s/ok.lua", "outcome": "ok"]) == 5)
            #expect(samples.sum("moonhook_invocations_total", ["source": "s", "handler": "s/bad.lua", "outcome": "error"]) == 2)
            #expect(samples.sum("moonhook_invocation_duration_seconds_count", ["source": "s", "handler": "s/ok.lua"]) == 5)
            #expect(samples.sum("moonhook_invocation_instructions_total", ["handler": "s/ok.lua"]) > 0)
            #expect(samples.sum("moonhook_dead_letters_total", ["source": "s", "handler": "s/bad.lua"]) == 2)
            #expect(samples.sum("moonhook_kv_operations_total", ["operation": "incr", "outcome": "ok"]) == 5)
            #expect(samples.sum("moonhook_store_appends_total") == 7)
            #expect(samples.sum("moonhook_store_batch_size_count") >= 1)
            #expect(samples.sum("moonhook_store_commit_duration_seconds_count") >= 1)
            #expect(samples.sum("moonhook_pairs", ["source": "s", "state": "dead"]) == 2)
            #expect(samples.sum("moonhook_pairs", ["source": "s", "state": "pending"]) == 0)
            #expect(samples.sum("moonhook_pairs", ["source": "t", "state": "pending"]) == 0, "an idle source is reported at zero")
            #expect(samples.matching("moonhook_oldest_pending_age_seconds", ["source": "s"]).count == 1)
            #expect(samples.matching("moonhook_lua_memory_bytes").count == 2, "one per worker")
            #expect(samples.sum("moonhook_lua_memory_bytes") > 0)
            #expect(samples.matching("moonhook_build_info").first?.labels["version"] == MoonhookVersion.current)

            // Without the token, or with a wrong one, /metrics is refused.
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer nope"]).status == .unauthorized)
        }
    }

    /// The oldest pending age rises while a pair waits for a slot, and falls back to zero once it ran.
    @Test(arguments: StoreEngine.all) func oldestPendingAgeFollowsAWaitingPair(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("q/source.yaml", "scheme: none\nid: /id\n")
        // The second pair waits 3 s for the first: long enough for a scrape on a loaded machine to see it.
        try handlers.write("q/slow.lua", "return { concurrency = 1, handle = function(e) time.sleep(3000) end }\n")
        let app = try await buildApplication(configuration: try await Self.configuration(handlers, engine), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            for index in 0..<2 { #expect(try await Self.post(client, "q", #"{"type":"slow","id":"q-\#(index)"}"#).status == .accepted) }
            let waiting = try await Self.scrapeUntil(client) { $0.sum("moonhook_oldest_pending_age_seconds", ["source": "q"]) >= 0.3 }
            #expect(waiting.sum("moonhook_oldest_pending_age_seconds", ["source": "q"]) >= 0.3)
            #expect(waiting.sum("moonhook_pairs", ["source": "q", "state": "pending"]) == 1)
            let done = try await Self.scrapeUntil(client) {
                $0.sum("moonhook_invocations_total", ["source": "q", "outcome": "ok"]) >= 2 && $0.sum("moonhook_pairs", ["source": "q", "state": "pending"]) == 0
                    && $0.sum("moonhook_pairs", ["source": "q", "state": "running"]) == 0 && $0.sum("moonhook_oldest_pending_age_seconds", ["source": "q"]) == 0
            }
            #expect(done.sum("moonhook_oldest_pending_age_seconds", ["source": "q"]) == 0)
            #expect(done.sum("moonhook_pairs", ["source": "q", "state": "running"]) == 0)
        }
    }

    /// Without an admin token `/metrics` is off on the main listener; `metrics.listen` serves it
    /// on its own address without one.
    @Test func metricsListenServesWithoutTheToken() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        var configuration = try await Self.configuration(handlers, .sqlite)
        configuration.adminToken = nil
        let port = try Self.freePort()
        configuration.metrics.listen = .init(host: "127.0.0.1", port: port)
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .notFound)
            #expect(try await Self.post(client, "s", #"{"type":"ok","id":"1"}"#).status == .accepted)
            var text = ""
            for _ in 0..<50 {
                if let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(5)),
                    response.status == .ok
                {
                    text = String(buffer: try await response.body.collect(upTo: 1 << 22))
                    if !text.isEmpty { break }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let samples = try MetricsSamples(exposition: Array(text.utf8))
            #expect(samples.sum("moonhook_requests_total", ["source": "s", "status": "202"]) == 1)
        }
    }

    /// A port free now on 127.0.0.1.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound, "no free port on 127.0.0.1")
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Refused requests are kept with their reasons, address, header names and the start of their
    /// body with the source's secrets redacted; `moonhook refusals` lists them as an operator asks.
    @Test func refusalsAreKeptAndListed() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        var configuration = try await Self.configuration(handlers, .sqlite)
        configuration.refusals.keep = 3
        configuration.refusals.bodyBytes = 40
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let wrong: HTTPFields = [.contentType: "application/json", HTTPField.Name("X-Token")!: "wrong", HTTPField.Name("X-Trace")!: "abc"]
            // The body holds the source's secret: it must not come back.
            for index in 0..<5 {
                let body = #"{"id":"r-\#(index)","leak":"\#(Self.token)","type":"ok","padding":"\#(String(repeating: "p", count: 100))"}"#
                #expect(try await Self.post(client, "t", body, headers: wrong).status == .unauthorized)
            }
            #expect(try await Self.post(client, "elsewhere", "{}").status == .notFound)

            let answer = try await DeliveryTests.admin(client, "/admin/refusals?source=t")
            let list = try #require(answer["refusals"] as? [[String: Any]])
            #expect(list.count == 3, "refusals.keep per source")
            let newest = try #require(list.first)
            #expect(newest["status"] as? Int == 401)
            #expect(newest["reason"] as? String == "signature")
            #expect((newest["message"] as? String)?.isEmpty == false)
            #expect(newest["remote_address"] as? String == "127.0.0.1")
            #expect((newest["headers"] as? [String])?.contains("x-trace") == true)
            #expect((newest["headers"] as? [String])?.contains("x-token") == true)
            let body = try #require(newest["body"] as? String)
            #expect(body.hasPrefix(#"{"id":"r-4","leak":"[redacted]"#), "\(body)")
            #expect(body.utf8.count <= 40)
            #expect(!body.contains(Self.token))
            #expect((newest["body_bytes"] as? Int ?? 0) > 100)
            let all = try await DeliveryTests.admin(client, "/admin/refusals")
            #expect((all["refusals"] as? [[String: Any]])?.contains { $0["source"] as? String == "_unknown" && $0["reason"] as? String == "source" } == true)

            let port = try #require(client.port)
            let result = try await MoonhookProcess.detached {
                try MoonhookProcess.run(
                    ["refusals", "--source", "t", "--url", "http://127.0.0.1:\(port)"], environment: ["MOONHOOK_ADMIN_TOKEN": "admin-token"])
            }
            #expect(result.status == 0, "\(result.err)")
            #expect(result.out.contains(" t 401 signature: "), "\(result.out)")
            #expect(result.out.contains("from 127.0.0.1"), "\(result.out)")
            #expect(!result.out.contains(Self.token))
            let refused = try await MoonhookProcess.detached {
                try MoonhookProcess.run(["refusals", "--url", "http://127.0.0.1:\(port)"], environment: ["MOONHOOK_ADMIN_TOKEN": "wrong"])
            }
            #expect(refused.status != 0)
            #expect(refused.err.contains("401"), "\(refused.err)")
        }
    }

    /// The loader (and so `moonhook check` and hot reload) knows the dead-letter handler: `_dead.lua`
    /// takes no `on` patterns, and no handler may be named after the reserved type.
    @Test func checkKnowsTheDeadLetterHandler() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write("s/_dead.lua", "return { on = {'*'}, handle = function(e) end }\n")
        try handlers.write("s/moonhook.dead.lua", "return function(e) end\n")
        try handlers.write("ok/source.yaml", "scheme: none\n")
        try handlers.write("ok/_dead.lua", "return function(e) end\n")
        let result = try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path]) }
        let output = result.out + result.err
        #expect(result.status == 1, "\(output)")
        #expect(output.contains("s/_dead.lua: _dead.lua runs for dead-letter alerts (moonhook.dead) only: it takes no 'on' patterns"), "\(output)")
        #expect(output.contains("s/moonhook.dead.lua: moonhook.dead is reserved for dead-letter alerts: name the handler _dead.lua"), "\(output)")
        #expect(output.contains("ok: ok (none, 1 handlers)"), "\(output)")
    }

    /// A dead pair runs its source's `_dead.lua` once, with what died; the alert goes to
    /// `_dead.lua` only (not to `_default.lua`, not to a `*` pattern), and a failing `_dead.lua`
    /// is dead-lettered without an alert of its own.
    @Test(arguments: StoreEngine.all) func deadLettersAlertOnce(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/fail.lua", "return { retries = 1, retry_delay = 0.05, handle = function(e) error('upstream 500') end }\n")
        try handlers.write("s/all.lua", "return { on = {'*'}, handle = function(e) log.info('all ran', {type = e.type}) end }\n")
        try handlers.write("s/_default.lua", "return function(e) log.info('default ran', {type = e.type}) end\n")
        try handlers.write(
            "s/_dead.lua",
            """
            return function(e)
              local a = e.body
              kv.incr('alerts')
              log.info('alert', {type = e.type, id = a.delivery.id, dtype = a.delivery.type, source = a.delivery.source,
                handler = a.handler, attempts = a.attempts, error = a.error})
            end
            """)
        try handlers.write("x/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("x/fail.lua", "return { retries = 0, handle = function(e) error('x fails') end }\n")
        try handlers.write("x/_dead.lua", "return { retries = 0, handle = function(e) log.info('x alert'); error('the chat is down') end }\n")
        let records = LogRecords()
        let configuration = try await Self.configuration(handlers, engine)
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            #expect(try await Self.post(client, "s", #"{"type":"fail","id":"d-1"}"#).status == .accepted)
            #expect(try await Self.post(client, "x", #"{"type":"fail","id":"x-1"}"#).status == .accepted)
            #expect(await Server.eventually({ records.all.contains { $0.message == "alert" } && records.all.contains { $0.message == "x alert" } }, within: .seconds(30)))
            // Long enough for a second alert, or an alert of the failed alert, to show.
            let samples = try await Self.scrapeUntil(client) {
                $0.sum("moonhook_dead_letters_total", ["source": "x", "handler": "x/_dead.lua"]) == 1
            }
            try await Task.sleep(for: .milliseconds(500))
            let alerts = records.all.filter { $0.message == "alert" }
            #expect(alerts.count == 1)
            let alert = try #require(alerts.first)
            #expect(alert.metadata["type"] == "moonhook.dead")
            #expect(alert.metadata["id"] == "d-1")
            #expect(alert.metadata["dtype"] == "fail")
            #expect(alert.metadata["source"] == "s")
            #expect(alert.metadata["handler"] == "s/fail.lua")
            #expect(alert.metadata["attempts"] == "2")
            #expect(alert.metadata["error"] == "s/fail.lua:1: upstream 500")
            #expect(!records.all.contains { $0.message == "default ran" }, "_default.lua never sees an alert")
            #expect(records.all.filter { $0.message == "all ran" }.map { $0.metadata["type"] } == ["fail"], "a * pattern never sees an alert")
            #expect(records.all.filter { $0.message == "x alert" }.count == 1, "a failing _dead.lua is not alerted on")
            #expect(samples.sum("moonhook_dead_letters_total", ["source": "s", "handler": "s/fail.lua"]) == 1)
            let deadOnes = try await DeliveryTests.admin(client, "/admin/deliveries?type=moonhook.dead")
            let list = try #require(deadOnes["deliveries"] as? [[String: Any]])
            #expect(list.count == 2, "one alert per death: s's, and x's (whose own death gives none)")
        }
    }
}
