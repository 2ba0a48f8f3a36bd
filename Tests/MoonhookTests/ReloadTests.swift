import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LuaRuntime
import Moonhook
import MoonhookStore
import NIOCore
import Synchronization
import Testing

/// A server whose handlers folder the test edits while it runs.
struct ReloadingServer {
    let handlers: TestHandlers
    let records = LogRecords()

    init() throws {
        handlers = try TestHandlers(copyExamples: false)
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write("s/ping.lua", Self.handler("v1"))
    }

    static func handler(_ version: String) -> String {
        "return function(event) log.info('ran " + version + "', {n = event.body.n}) end\n"
    }

    func run(_ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
        var configuration = Server.configuration(handlers)
        configuration.adminToken = "admin-token"
        var timing = HandlerWatcher.Timing()
        timing.debounce = .milliseconds(50)
        timing.rescan = .milliseconds(500)
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: records.logger(), watchTiming: timing)
        try await app.test(.live, body)
    }

    /// Posts to `source` until a handler logs `ran <version>`; the time it took, or nil after `limit`.
    func post(_ client: any TestClientProtocol, source: String = "s", until version: String, limit: Duration = .seconds(10)) async throws -> Duration? {
        let clock = ContinuousClock()
        let started = clock.now
        var n = 0
        while clock.now - started < limit {
            n += 1
            let response = try await client.execute(uri: "/hooks/\(source)", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"type":"ping","n":\#(n),"id":"\#(UUID().uuidString)"}"#))
            if response.status == .accepted, await Server.eventually({ records.all.contains { $0.message == "ran \(version)" } }, within: .milliseconds(200)) {
                return clock.now - started
            }
        }
        return nil
    }
}

@Suite("Hot reload")
struct ReloadTests {
    @Test func everySavePatternIsPickedUp() async throws {
        let server = try ReloadingServer()
        defer { server.handlers.remove() }
        let file = server.handlers.folder.appending(path: "s/ping.lua")
        try await server.run { client in
            #expect(try await server.post(client, until: "v1") != nil)
            // Write in place: same inode, truncated and rewritten.
            let handle = try FileHandle(forWritingTo: file)
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Data(ReloadingServer.handler("v2").utf8))
            try handle.close()
            #expect(try await server.post(client, until: "v2") != nil, "write in place")
            // Write a temporary file, then rename it over the handler (vim, most editors).
            let temporary = server.handlers.folder.appending(path: "s/.ping.lua.swp")
            try ReloadingServer.handler("v3").write(to: temporary, atomically: false, encoding: .utf8)
            _ = rename(temporary.path, file.path)
            #expect(try await server.post(client, until: "v3") != nil, "write then rename")
            // Delete, then create.
            try FileManager.default.removeItem(at: file)
            try await Task.sleep(for: .milliseconds(20))
            try ReloadingServer.handler("v4").write(to: file, atomically: false, encoding: .utf8)
            #expect(try await server.post(client, until: "v4") != nil, "delete then create")
        }
    }

    @Test func aWholeFolderReplacedLikeGitDoes() async throws {
        let server = try ReloadingServer()
        defer { server.handlers.remove() }
        let outside = FileManager.default.temporaryDirectory.appending(path: "moonhook-replacement-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: outside) }
        try await server.run { client in
            #expect(try await server.post(client, until: "v1") != nil)
            try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
            try "scheme: none\n".write(to: outside.appending(path: "source.yaml"), atomically: true, encoding: .utf8)
            try ReloadingServer.handler("replaced").write(to: outside.appending(path: "ping.lua"), atomically: true, encoding: .utf8)
            let folder = server.handlers.folder.appending(path: "s")
            let old = server.handlers.folder.appendingPathExtension("old-s")
            _ = rename(folder.path, old.path)
            _ = rename(outside.path, folder.path)
            #expect(try await server.post(client, until: "replaced") != nil)
            try? FileManager.default.removeItem(at: old)
        }
    }

    @Test func brokenHandlersKeepTheLastGoodVersionServing() async throws {
        let server = try ReloadingServer()
        defer { server.handlers.remove() }
        try await server.run { client in
            #expect(try await server.post(client, until: "v1") != nil)
            try server.handlers.write("s/ping.lua", "return function(event)\n  log.info('ran broken'\nend\n")
            try await Task.sleep(for: .milliseconds(700))
            var admin = HTTPFields()
            admin[.authorization] = "Bearer admin-token"
            let status = try await client.execute(uri: "/admin/handlers", method: .get, headers: admin)
            #expect(status.status == .ok)
            let text = String(buffer: status.body)
            #expect(text.contains(#"s/ping.lua:3: ')' expected (to close '(' at line 2) near 'end'"#), "\(text)")
            #expect(text.contains(#""serving":true"#))
            // The old version still answers.
            server.records.clear()
            #expect(try await server.post(client, until: "v1") != nil)
            // A top-level runtime error is refused the same way.
            server.records.clear()
            try server.handlers.write("s/ping.lua", "error('not today')\nreturn function() end\n")
            try await Task.sleep(for: .milliseconds(700))
            #expect(try await server.post(client, until: "v1") != nil)
            #expect(server.records.all.contains { $0.message.contains("previous version keeps serving") && $0.metadata["problem"]?.contains("not today") == true })
            // Fixed again: the new version takes over.
            try server.handlers.write("s/ping.lua", ReloadingServer.handler("fixed"))
            #expect(try await server.post(client, until: "fixed") != nil)
            let unauthorized = try await client.execute(uri: "/admin/handlers", method: .get)
            #expect(unauthorized.status == .unauthorized)
        }
    }

    @Test func newAndDeletedSources() async throws {
        let server = try ReloadingServer()
        defer { server.handlers.remove() }
        try await server.run { client in
            let missing = try await client.execute(uri: "/hooks/fresh", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
            #expect(missing.status == .notFound)
            try server.handlers.write("fresh/ping.lua", ReloadingServer.handler("fresh"))
            try server.handlers.write("fresh/source.yaml", "scheme: none\n")
            // A bound for a loaded runner: the watcher sees the folder at once, the load takes the rest.
            let appeared = try await server.post(client, source: "fresh", until: "fresh", limit: .seconds(15))
            #expect(appeared != nil, "the new source was not served within 15 s")
            try FileManager.default.removeItem(at: server.handlers.folder.appending(path: "fresh"))
            var gone = false
            for _ in 0..<200 where !gone {
                let response = try await client.execute(uri: "/hooks/fresh", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"type":"ping"}"#))
                gone = response.status == .notFound
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(gone)
        }
    }

    /// A client posts without pause while the handler is rewritten 50 times: no request fails, no
    /// accepted delivery fails, and each new version is seen.
    @Test func fiftyRewritesUnderLoadLoseNothing() async throws {
        let server = try ReloadingServer()
        defer { server.handlers.remove() }
        try await server.run { client in
            let stop = Stop()
            async let load: (Int, Int) = {
                var sent = 0
                var refused = 0
                while !stop.isSet {
                    let response = try await client.execute(uri: "/hooks/s", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"type":"ping","n":\#(sent)}"#))
                    sent += 1
                    if response.status != .accepted { refused += 1 }
                }
                return (sent, refused)
            }()
            var slowest: Duration = .zero
            var missed: [Int] = []
            for version in 1...50 {
                try server.handlers.write("s/ping.lua", ReloadingServer.handler("r\(version)"))
                if let seen = try await server.post(client, until: "r\(version)") { slowest = max(slowest, seen) } else { missed.append(version) }
            }
            stop.set()
            let (sent, refused) = try await load
            let problems = server.records.all.filter { $0.message.contains("not reloaded") }.map { $0.metadata["problem"] ?? "" }
            #expect(missed.isEmpty, "versions never seen: \(missed); reload problems: \(problems)")
            #expect(refused == 0)
            #expect(sent > 50)
            #expect(!server.records.all.contains { $0.message.hasPrefix("handler failed") })
            print("50 rewrites under load: \(sent) requests, \(refused) refused, slowest new version seen after \(slowest)")
        }
    }

    /// Reloading the same folder 1,000 times leaves the workers' memory where it was.
    @Test func thousandReloadsDoNotGrowMemory() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write("s/a.lua", "local t = {} for i = 1, 200 do t[i] = tostring(i) end return function() return #t end")
        try handlers.write("s/b.lua", "return {on = {'x.*'}, handle = function() end}")
        let pool = try WorkerPool(count: 2, services: TestServices.make(LogRecords().logger()))
        defer { pool.shutdown() }
        let directory = SourceDirectory(SourceCatalog())
        func reload() async throws {
            guard case .success(let source) = await SourceCatalog.loadSource(name: "s", root: handlers.folder, pool: pool, environment: [:]) else {
                Issue.record("load failed")
                return
            }
            directory.replace(with: SourceCatalog(sources: ["s": source]))
            await pool.collectRetired()
        }
        for _ in 0..<50 { try await reload() }
        let before = await pool.workers[0].collectGarbage()
        for _ in 0..<1000 { try await reload() }
        let after = await pool.workers[0].collectGarbage()
        #expect(await pool.workers[0].handlerCount == 2)
        #expect(after < before + 256 * 1024, "grew from \(before) to \(after) bytes")
    }
}

final class Stop: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}
