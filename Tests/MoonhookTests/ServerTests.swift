import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LuaRuntime
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing
import WebhookVerification

/// A handlers folder in a temporary directory: the repository's examples plus test sources.
struct TestHandlers {
    let folder: URL

    init(copyExamples: Bool = true) throws {
        folder = FileManager.default.temporaryDirectory.appending(path: "moonhook-handlers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if copyExamples {
            for name in ["browser-use", "induced"] {
                try FileManager.default.copyItem(at: ReferenceSigner.root.appending(path: "handlers/\(name)"), to: folder.appending(path: name))
            }
        }
    }

    /// A folder that exists already.
    init(folder: URL) {
        self.folder = folder
    }

    func write(_ path: String, _ text: String) throws {
        let url = folder.appending(path: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(at: folder) }
}

enum Server {
    static let environment = ["BROWSER_USE_WEBHOOK_SECRET": "bu-test-secret", "INDUCED_WEBHOOK_TOKEN": "induced-token", "CHAT_WEBHOOK_URL": ""]

    static func configuration(_ handlers: TestHandlers, maxBodyBytes: Int = 1 << 20) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.handlersFolder = handlers.folder.path
        configuration.port = 0
        configuration.workers = 2
        configuration.maxBodyBytes = maxBodyBytes
        configuration.store = "sqlite:" + handlers.folder.appending(path: "state/moonhook.sqlite").path
        // HummingbirdTesting's live client opens its connection when the server starts, and a test
        // may first use it long after; the server closes a connection that sends no request head
        // within header_timeout of opening (a slow-sender defence), and that client then waits for
        // an answer without end; the same after idle_timeout between two requests. The slow-sender
        // tests set their own.
        configuration.server.headerTimeout = .seconds(600)
        configuration.server.idleTimeout = .seconds(600)
        return configuration
    }

    static func fixture(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: ReferenceSigner.root.appending(path: "fixtures/\(path)")))
    }

    static func headers(_ list: [(name: String, value: String)], contentType: String? = "application/json") -> HTTPFields {
        var fields = HTTPFields()
        if let contentType { fields[.contentType] = contentType }
        for (name, value) in list { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return fields
    }

    /// Waits until `condition` holds, for at most `limit`: a bound for a loaded machine (the whole
    /// suite shares two cores), not a timing; a condition that holds returns at once.
    static func eventually(_ condition: () -> Bool, within limit: Duration = .seconds(15)) async -> Bool {
        let clock = ContinuousClock()
        let started = clock.now
        while clock.now - started < limit {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }
}

@Suite("The receiver")
struct ServerTests {
    @Test func browserUseFixtureRunsItsHandler() async throws {
        let handlers = try TestHandlers()
        defer { handlers.remove() }
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: Server.environment, logger: records.logger())
        let body = try Server.fixture("browser-use/agent.task.status_update.json")
        let signature = try ReferenceSigner.sign("browser-use", secret: "bu-test-secret", body: body)
        try await app.test(.live) { client in
            let response = try await client.execute(uri: "/hooks/browser-use", method: .post, headers: Server.headers(signature), body: ByteBuffer(bytes: body))
            #expect(response.status == .accepted)
            let answer = String(buffer: response.body)
            #expect(answer.contains(#""type":"agent.task.status_update""#))
            #expect(answer.contains(#""handlers":1"#))
            #expect(await Server.eventually { records.all.contains { $0.message == "task finished" } })
            let line = try #require(records.all.first { $0.message == "task finished" })
            #expect(line.metadata["task"] == "task_abc123")
            #expect(line.metadata["source"] == "browser-use")
            #expect(line.metadata["delivery.id"] == Digest.sha256Hex(body))
        }
    }

    /// The Browser Use example posts to the chat webhook once per task, however often the event
    /// is resent; the Induced example counts steps per session in the SQLite store.
    @Test func exampleHandlersUseKVAndHTTP() async throws {
        let handlers = try TestHandlers()
        defer { handlers.remove() }
        let chat = OutboundServer()
        try await chat.run { chatPort in
            var configuration = Server.configuration(handlers)
            configuration.outbound.allowedRanges = [IPRange("127.0.0.1")!]
            var environment = Server.environment
            environment["CHAT_WEBHOOK_URL"] = "http://127.0.0.1:\(chatPort)/chat"
            let records = LogRecords()
            let app = try await buildApplication(configuration: configuration, environment: environment, logger: records.logger())
            try await app.test(.live) { client in
                // Three deliveries about the same finished task (the sender's timestamps differ).
                let fixture = String(decoding: try Server.fixture("browser-use/agent.task.status_update.json"), as: UTF8.self)
                for second in 0..<3 {
                    let finished = Array(fixture.replacingOccurrences(of: "10:30:00Z", with: "10:30:0\(second)Z").utf8)
                    let signature = try ReferenceSigner.sign("browser-use", secret: "bu-test-secret", body: finished)
                    let response = try await client.execute(uri: "/hooks/browser-use", method: .post, headers: Server.headers(signature), body: ByteBuffer(bytes: finished))
                    #expect(response.status == .accepted)
                }
                #expect(await Server.eventually { records.all.filter { $0.message == "already notified" }.count == 2 })
                for step in [3, 4] {
                    let body = Array(String(decoding: try Server.fixture("induced/step_completed.json"), as: UTF8.self).replacingOccurrences(of: "\"step\": 3", with: "\"step\": \(step)").utf8)
                    let response = try await client.execute(uri: "/hooks/induced", method: .post, headers: Server.headers([("X-Webhook-Token", "induced-token")]), body: ByteBuffer(bytes: body))
                    #expect(response.status == .accepted)
                }
                #expect(await Server.eventually { records.all.contains { $0.message == "step completed" && $0.metadata["steps"] == "2" } })
            }
        }
        #expect(chat.requests.count == 1)
        #expect(chat.requests.first?.body == #"{"text":"Task task_abc123 finished (1 so far in session_xyz)"}"#)
        #expect(chat.requests.first?.headers["content-type"] == "application/json")
        let store = try await openStore(handlers.folder.appending(path: "state/moonhook.sqlite").path, logger: LogRecords().logger())
        #expect(try await store.get("induced", "steps:browser_iwnx132n1") == Array("2".utf8))
        #expect(try await store.get("browser-use", "finished:session_xyz") == Array("1".utf8))
        await store.close()
    }

    @Test func inducedFixturesRouteOnDataEventType() async throws {
        let handlers = try TestHandlers()
        defer { handlers.remove() }
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: Server.environment, logger: records.logger())
        try await app.test(.live) { client in
            for (fixture, message) in [("induced/browser_ready.json", "browser ready"), ("induced/step_completed.json", "step completed")] {
                let body = try Server.fixture(fixture)
                let response = try await client.execute(uri: "/hooks/induced", method: .post, headers: Server.headers([("X-Webhook-Token", "induced-token")]), body: ByteBuffer(bytes: body))
                #expect(response.status == .accepted)
                #expect(String(buffer: response.body).contains(#""id":"\#(Digest.sha256Hex(body))""#))
                #expect(await Server.eventually { records.all.contains { $0.message == message } })
            }
            let refused = try await client.execute(uri: "/hooks/induced", method: .post, headers: Server.headers([("X-Webhook-Token", "wrong")]), body: ByteBuffer(bytes: try Server.fixture("induced/browser_ready.json")))
            #expect(refused.status == .unauthorized)
            #expect(String(buffer: refused.body) == "token does not match\n")
        }
    }

    @Test func refusalsCarryAOneLineReason() async throws {
        let handlers = try TestHandlers()
        defer { handlers.remove() }
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers, maxBodyBytes: 4096), environment: Server.environment, logger: records.logger())
        let body = try Server.fixture("browser-use/test.json")
        let good = try ReferenceSigner.sign("browser-use", secret: "bu-test-secret", body: body)
        try await app.test(.live) { client in
            func post(_ uri: String, _ headers: HTTPFields, _ body: [UInt8]) async throws -> (HTTPResponse.Status, String) {
                let response = try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: body))
                return (response.status, String(buffer: response.body))
            }
            #expect(try await post("/hooks/nope", Server.headers(good), body) == (.notFound, "unknown source 'nope'\n"))
            #expect(try await post("/hooks/browser-use", Server.headers([]), body) == (.unauthorized, "missing X-Webhook-Signature header\n"))
            let tampered = Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "ok", with: "ko").utf8)
            #expect(try await post("/hooks/browser-use", Server.headers(good), tampered) == (.unauthorized, "signature does not match\n"))
            let broken = Array("{\"type\": ".utf8)
            #expect(try await post("/hooks/browser-use", Server.headers(try ReferenceSigner.sign("browser-use", secret: "bu-test-secret", body: broken)), broken).0 == .badRequest)
            let untyped = Array("{\"payload\": {}}".utf8)
            #expect(try await post("/hooks/browser-use", Server.headers(try ReferenceSigner.sign("browser-use", secret: "bu-test-secret", body: untyped)), untyped)
                == (.badRequest, "no event type at /type\n"))
            #expect(try await post("/hooks/browser-use", Server.headers(good, contentType: "text/plain"), body) == (.unsupportedMediaType, "content type must be application/json, application/x-www-form-urlencoded or multipart/form-data, got text/plain\n"))
            let huge = Array(repeating: UInt8(ascii: " "), count: 5000) + body
            let (status, reason) = try await post("/hooks/browser-use", Server.headers(try ReferenceSigner.sign("browser-use", secret: "bu-test-secret", body: huge)), huge)
            #expect(status == .contentTooLarge)
            #expect(reason == "body of 5\(body.count) bytes exceeds the limit of 4096 bytes\n" || reason.contains("exceeds the limit of 4096 bytes"))
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
        }
        let refusals = records.all.filter { $0.message == "webhook refused" }
        #expect(refusals.count == 7)
        #expect(refusals.contains { $0.metadata["reason"] == "signature does not match" && $0.metadata["status"] == "401" })
    }

    /// A body sent in chunks, with no Content-Length, is cut off at the limit while it is read.
    @Test func oversizedStreamedBodiesAreRefusedWhileReading() async throws {
        let handlers = try TestHandlers()
        defer { handlers.remove() }
        let app = try await buildApplication(configuration: Server.configuration(handlers, maxBodyBytes: 4096), environment: Server.environment, logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/browser-use")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-Webhook-Signature", value: String(repeating: "0", count: 64))
            let chunks = (0..<64).map { _ in ByteBuffer(repeating: UInt8(ascii: " "), count: 1024) }
            request.body = .stream(chunks.async, length: .unknown)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 413)
            #expect(String(buffer: try await response.body.collect(upTo: 1024)) == "body exceeds the limit of 4096 bytes\n")
        }
    }

    @Test func handlersResolveByNamePatternAndDefault() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("shop/source.yaml", "scheme: none\n")
        try handlers.write("shop/order.created.lua", "return function(e) log.info('exact ' .. e.type) end")
        try handlers.write("shop/orders.lua", "return {on = {'order.*'}, handle = function(e) log.info('pattern ' .. e.type) end}")
        try handlers.write("shop/_default.lua", "return function(e) log.info('default ' .. e.type) end")
        try handlers.write("plain/source.yaml", "scheme: none\n")
        try handlers.write("plain/known.lua", "return function(e) error('handler failure ' .. e.attempt) end")
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: [:], logger: records.logger())
        #expect(records.all.contains { $0.message == "source accepts webhooks without any verification (scheme: none)" && $0.metadata["source"] == "shop" })
        try await app.test(.live) { client in
            func send(_ source: String, _ type: String) async throws -> String {
                let response = try await client.execute(uri: "/hooks/\(source)", method: .post, headers: Server.headers([]), body: ByteBuffer(string: #"{"type":"\#(type)"}"#))
                #expect(response.status == .accepted)
                return String(buffer: response.body)
            }
            let answer0 = try await send("shop", "order.created")
            #expect(answer0.contains(#""handlers":2"#))
            let answer1 = try await send("shop", "order.refunded")
            #expect(answer1.contains(#""handlers":1"#))
            let answer2 = try await send("shop", "customer.updated")
            #expect(answer2.contains(#""handlers":1"#))
            let answer3 = try await send("plain", "unknown")
            #expect(answer3.contains(#""handlers":0"#))
            let answer4 = try await send("plain", "known")
            #expect(answer4.contains(#""handlers":1"#))
            let expected = ["exact order.created", "pattern order.created", "pattern order.refunded", "default customer.updated"]
            #expect(await Server.eventually { Set(expected).isSubset(of: Set(records.all.map(\.message))) })
            #expect(await Server.eventually { records.all.contains { $0.message == "handler failed, will retry" && $0.metadata["error"] == "plain/known.lua:1: handler failure 1" } })
            #expect(records.all.contains { $0.message.contains("unhandled") && $0.metadata["event.type"] == "unknown" })
        }
        #expect(!records.all.contains { $0.message == "default order.created" })
    }

    @Test func brokenSourceFoldersAreReportedAndOthersServe() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("good/source.yaml", "scheme: none\n")
        try handlers.write("good/x.lua", "return function() end")
        try handlers.write("syntax/source.yaml", "scheme: none\n")
        try handlers.write("syntax/x.lua", "return function(\n  local = 1\nend")
        try handlers.write("yaml/source.yaml", "scheme: github\nsecrets: [\n")
        try handlers.write("nosecret/source.yaml", "scheme: github\n")
        try handlers.write("env/source.yaml", "scheme: github\nsecrets:\n  - ${NOT_SET_ANYWHERE}\n")
        try handlers.write("missing/x.lua", "return function() end")
        let pool = try WorkerPool(count: 1, services: TestServices.make(LogRecords().logger()))
        defer { pool.shutdown() }
        let catalog = await SourceCatalog.load(folder: handlers.folder.path, pool: pool, environment: [:])
        #expect(catalog.sources.keys.sorted() == ["good"])
        let problems = catalog.problems.map(\.description)
        #expect(problems.contains("syntax/x.lua:2: <name> or '...' expected near 'local'"))
        #expect(problems.contains { $0.hasPrefix("yaml/source.yaml:3: invalid YAML") })
        #expect(problems.contains("nosecret/source.yaml: scheme 'github' needs at least one secret"))
        #expect(problems.contains("env/source.yaml:3: environment variable NOT_SET_ANYWHERE is not set"))
        #expect(problems.contains { $0.hasPrefix("missing/source.yaml: missing source.yaml") })
    }
}

extension Digest {
    static func sha256Hex(_ bytes: [UInt8]) -> String { hex(hash(.sha256, bytes)) }
}

extension Array where Element: Sendable {
    /// The elements as an async sequence, for streamed request bodies.
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
