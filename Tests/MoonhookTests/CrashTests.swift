import AsyncHTTPClient
import Foundation
import MoonhookStore
import NIOCore
import Synchronization
import Testing

/// A real `moonhook serve` under continuous signed load, killed with SIGKILL and restarted: every
/// delivery answered 2xx has its handler run to completion at least once, and no delivery answered
/// otherwise is ever run. Then SIGTERM under load: the process exits 0 with no pair left running.
@Suite("Crashes", .serialized)
struct CrashTests {
    final class Tally: Sendable {
        let acknowledged = Mutex<[String]>([])
        let refused = Mutex<[String]>([])
    }

    /// Posts without pause until `stop` is set: one request in eight carries a wrong token.
    static func load(_ address: String, tally: Tally, stop: Stop, client: Int) async {
        var n = 0
        while !stop.isSet {
            n += 1
            let id = "\(address)-\(client)-\(n)"
            let bad = n % 8 == 0
            var request = HTTPClientRequest(url: "http://\(address)/hooks/c")
            request.method = .POST
            request.headers.add(name: "X-Token", value: bad ? "wrong" : "secret")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"type":"work","id":"\#(id)"}"#))
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
                if (200..<300).contains(response.status.code) {
                    tally.acknowledged.withLock { $0.append(id) }
                } else {
                    tally.refused.withLock { $0.append(id) }
                }
            } catch {
                // No answer (the process died mid-request): counted neither way.
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test func killedServersLoseNoAcknowledgedDelivery() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("c/source.yaml", "scheme: token\ntoken: header:X-Token\nsecrets: [secret]\nid: /id\n")
        try handlers.write("c/work.lua", "return function(e) time.sleep(20) kv.incr('ran:' .. e.body.id) end")
        let config = handlers.folder.appending(path: "moonhook.yaml").path
        try "deliveries:\n  lease: 1s\n  poll_interval: 100ms\n".write(toFile: config, atomically: true, encoding: .utf8)
        let store = handlers.folder.appending(path: "state.sqlite").path
        let arguments = ["serve", "--config", config, "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store", "sqlite:" + store]
        let tally = Tally()

        func start() async throws -> (MoonhookProcess, String) {
            let server = try MoonhookProcess(arguments, environment: ["MOONHOOK_LOG_LEVEL": "notice"])
            let logs = LogLines(server.stderr)
            guard let address = await logs.first("moonhook listening")?["address"] else {
                kill(server.process.processIdentifier, SIGKILL)
                server.process.waitUntilExit()
                throw CrashTestError(message: "server did not start: \(logs.all)")
            }
            return (server, address)
        }

        func underLoad(_ address: String, for time: Duration) async {
            let stop = Stop()
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<4 { group.addTask { await Self.load(address, tally: tally, stop: stop, client: client) } }
                try? await Task.sleep(for: time)
                stop.set()
            }
        }

        for round in 0..<3 {
            let (server, address) = try await start()
            let stop = Stop()
            async let loading: Void = {
                await withTaskGroup(of: Void.self) { group in
                    for client in 0..<4 { group.addTask { await Self.load(address, tally: tally, stop: stop, client: client) } }
                }
            }()
            try await Task.sleep(for: .milliseconds(1200 + 300 * round))
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            stop.set()
            await loading
        }

        // SIGTERM under load: stops accepting, finishes what it started, exits 0. It runs long
        // enough (two leases) to take over every pair the killed processes left running first.
        let (server, address) = try await start()
        async let loading: Void = underLoad(address, for: .seconds(3))
        try await Task.sleep(for: .milliseconds(2500))
        kill(server.process.processIdentifier, SIGTERM)
        server.process.waitUntilExit()
        await loading
        #expect(server.process.terminationStatus == 0)
        let inbox = try await openStore(store, logger: LogRecords().logger())
        #expect(try await inbox.deliveries(DeliveryFilter(status: .running)).deliveries.isEmpty, "SIGTERM left pairs running")
        await inbox.close()

        // One more start runs whatever is still due; every acknowledged delivery has then run.
        let acknowledged = tally.acknowledged.withLock { $0 }
        let refused = tally.refused.withLock { $0 }
        #expect(acknowledged.count > 100, "too little load to mean anything: \(acknowledged.count)")
        #expect(refused.count > 10)
        let (final, _) = try await start()
        defer {
            kill(final.process.processIdentifier, SIGTERM)
            final.process.waitUntilExit()
        }
        let reader = try await openStore(store, logger: LogRecords().logger())
        var missing = acknowledged
        for _ in 0..<300 where !missing.isEmpty {
            var still: [String] = []
            for id in missing where try await reader.get("c", "ran:" + id) == nil { still.append(id) }
            missing = still
            if !missing.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(missing.isEmpty, "\(missing.count) of \(acknowledged.count) acknowledged deliveries never ran: \(missing.prefix(5))")
        var ranRefused: [String] = []
        for id in refused where try await reader.get("c", "ran:" + id) != nil { ranRefused.append(id) }
        #expect(ranRefused.isEmpty, "deliveries answered non-2xx were run: \(ranRefused.prefix(5))")
        var twice = 0
        for id in acknowledged where try await reader.get("c", "ran:" + id).map({ String(decoding: $0, as: UTF8.self) }) != "1" { twice += 1 }
        print("crash test: \(acknowledged.count) acknowledged, \(refused.count) refused, \(twice) run more than once (killed mid-run)")
        await reader.close()
    }
}

struct CrashTestError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A delivery whose attempts keep ending with their process is not run forever: every attempt
/// counts when it starts, so once its retries are used up it is dead-lettered, saying why.
@Suite("Crash loops", .serialized)
struct CrashLoopTests {
    @Test func aPairThatKeepsTakingItsProcessDownIsDeadLettered() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("c/source.yaml", "scheme: token\ntoken: header:X-Token\nsecrets: [secret]\nid: /id\n")
        // It logs when it starts, then waits long enough to be killed in the middle.
        try handlers.write("c/work.lua", """
            return { retries = 1, handle = function(e) log.warn('attempt started', {attempt = e.attempt}) time.sleep(8000) end }
            """)
        // The dead-letter alert of a pair dead-lettered without running again.
        try handlers.write("c/_dead.lua", "return function(e) log.warn('alert', {id = e.body.delivery.id, error = e.body.error}) end")
        let config = handlers.folder.appending(path: "moonhook.yaml").path
        try "deliveries:\n  lease: 1s\n  poll_interval: 100ms\n".write(toFile: config, atomically: true, encoding: .utf8)
        let store = handlers.folder.appending(path: "state.sqlite").path
        let arguments = ["serve", "--config", config, "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store", "sqlite:" + store]

        func start() async throws -> (MoonhookProcess, LogLines, String) {
            let server = try MoonhookProcess(arguments, environment: ["MOONHOOK_LOG_LEVEL": "notice"])
            let logs = LogLines(server.stderr)
            guard let address = await logs.first("moonhook listening")?["address"] else {
                kill(server.process.processIdentifier, SIGKILL)
                server.process.waitUntilExit()
                throw CrashTestError(message: "server did not start: \(logs.all)")
            }
            return (server, logs, address)
        }

        // Attempts 1 and 2 (the one retry) each die with their process.
        var (server, logs, address) = try await start()
        var request = HTTPClientRequest(url: "http://\(address)/hooks/c")
        request.method = .POST
        request.headers.add(name: "X-Token", value: "secret")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"type":"work","id":"crash-1"}"#))
        #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status == .accepted)
        for attempt in 1...2 {
            let started = await logs.first("attempt started")
            #expect(started?["attempt"] == "\(attempt)", "\(logs.all)")
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            (server, logs, address) = try await start()
        }
        // The third claim finds the retries used up: dead-lettered, not run.
        let dead = await logs.first("handler dead-lettered")
        #expect(dead?["error"]?.contains("did not finish: the process running it ended") == true, "\(logs.all)")
        #expect(!logs.all.contains { $0["msg"] == "attempt started" }, "a third attempt ran")
        let alert = await logs.first("alert")
        #expect(alert?["id"] == "crash-1", "\(logs.all)")
        #expect(alert?["error"]?.contains("did not finish: the process running it ended") == true, "\(logs.all)")
        kill(server.process.processIdentifier, SIGTERM)
        server.process.waitUntilExit()
        let inbox = try await openStore(store, logger: LogRecords().logger())
        let deadList = try await inbox.deliveries(DeliveryFilter(status: .dead)).deliveries
        #expect(deadList.map(\.id) == ["crash-1"])
        let alerts = try await inbox.deliveries(DeliveryFilter(type: "moonhook.dead")).deliveries
        #expect(alerts.count == 1, "one death, one alert: \(alerts.map(\.id))")
        if let seq = deadList.first?.seq, let detail = try await inbox.show(seq) {
            #expect(detail.pairs.first?.lastError?.contains("used up the pair's retries") == true, "\(detail.pairs)")
        }
        await inbox.close()
    }
}
