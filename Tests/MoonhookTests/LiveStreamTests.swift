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

/// `GET /admin/stream` and `moonhook tail`, through a real server: what happens shows as it
/// happens, filtered; a reader that stops reading loses events, told how many, and holds up nothing.
@Suite("Live stream", .timeLimit(.minutes(2)))
struct LiveStreamTests {
    static func configuration(_ handlers: TestHandlers) async throws -> ServerConfiguration {
        var configuration = try await DeliveryTests.configuration(handlers)
        configuration.deliveries.lease = .seconds(60)
        return configuration
    }

    /// Opens the stream at `query` and waits for its preamble: from then on, the reader is subscribed.
    static func open(port: Int, query: String) async throws -> LiveReader {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/admin/stream?\(query)")
        request.headers.add(name: "Authorization", value: "Bearer admin-token")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream; charset=utf-8")
        let reader = LiveReader(response.body.makeAsyncIterator())
        let preamble = try await reader.chunk()
        #expect(preamble?.hasPrefix("retry: 2000") == true, "\(preamble ?? "nothing")")
        return reader
    }

    static func objects(_ events: [ServerSentEventParser.Event]) -> [(String, [String: Any])] {
        events.map { ($0.name, (try? JSONSerialization.jsonObject(with: Data($0.data.utf8)) as? [String: Any]) ?? [:]) }
    }

    @Test func deliveriesAttemptsAndLogLinesShowAsTheyHappenFiltered() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/ping.lua", "return function(e) log.debug('detail') log.info('pinged', {n = e.body.n}) end\n")
        try handlers.write("s/fail.lua", "return { retries = 0, handle = function(e) log.warn('about to fail') error('upstream said no') end }\n")
        try handlers.write("t/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("t/ping.lua", "return function(e) log.info('other source') end\n")
        var configuration = try await Self.configuration(handlers)
        configuration.logLevel = "debug"
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let everything = try await Self.open(port: port, query: "source=s")
            let errors = try await Self.open(port: port, query: "source=s&level=error")
            let oneHandler = try await Self.open(port: port, query: "handler=s/fail.lua")
            #expect(try await DeliveryTests.post(client, "t", #"{"type":"ping","id":"t-1"}"#).status == .accepted)
            #expect(try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"s-1","n":7}"#).status == .accepted)
            // s-1 has run before s-2 is posted: the readers below have been offered all of s-1's
            // events by the time they see s-2's.
            _ = try await everything.until { $0.contains { $0.name == "attempt" && $0.data.contains(#""delivery_id":"s-1""#) } }
            #expect(try await DeliveryTests.post(client, "s", #"{"type":"fail","id":"s-2"}"#).status == .accepted)
            _ = try await everything.until { $0.contains { $0.name == "attempt" && $0.data.contains("upstream said no") } }
            _ = try await errors.until { $0.contains { $0.name == "attempt" && $0.data.contains("upstream said no") } }
            _ = try await oneHandler.until { $0.contains { $0.name == "attempt" } }

            let all = Self.objects(everything.events)
            #expect(all.allSatisfy { $0.1["source"] as? String == "s" }, "another source's events")
            #expect(all.contains { $0.0 == "delivery" && $0.1["delivery_id"] as? String == "s-1" && $0.1["seq"] is Int })
            let pinged = try #require(all.first { $0.0 == "log" && $0.1["message"] as? String == "pinged" })
            #expect(pinged.1["handler"] as? String == "s/ping.lua" && pinged.1["delivery_id"] as? String == "s-1")
            #expect((pinged.1["fields"] as? [String: String])?["n"] == "7")
            #expect(all.contains { $0.0 == "log" && $0.1["message"] as? String == "detail" && $0.1["level"] as? String == "debug" })
            let failed = try #require(all.first { $0.0 == "attempt" && $0.1["delivery_id"] as? String == "s-2" })
            #expect(failed.1["outcome"] as? String == "dead" && failed.1["level"] as? String == "error")
            #expect((failed.1["message"] as? String)?.contains("s/fail.lua:1: upstream said no") == true, "\(failed.1)")

            let onlyErrors = Self.objects(errors.events)
            #expect(!onlyErrors.contains { $0.0 == "log" }, "lines below error passed the level filter: \(onlyErrors.map(\.1))")
            #expect(!onlyErrors.contains { $0.0 == "attempt" && $0.1["outcome"] as? String == "done" }, "s-1's attempt passed the level filter")
            #expect(onlyErrors.contains { $0.0 == "delivery" && $0.1["delivery_id"] as? String == "s-1" }, "deliveries pass a level filter")
            let handlerOnly = Self.objects(oneHandler.events)
            #expect(handlerOnly.allSatisfy { ($0.1["handler"] as? String ?? "s/fail.lua") == "s/fail.lua" && $0.1["source"] as? String == "s" })
            #expect(!handlerOnly.contains { $0.1["delivery_id"] as? String == "s-1" }, "s-1 was not routed to s/fail.lua")
            #expect(handlerOnly.contains { $0.0 == "delivery" && $0.1["delivery_id"] as? String == "s-2" })
            #expect(handlerOnly.contains { $0.0 == "log" && $0.1["message"] as? String == "about to fail" })
        }
    }

    @Test func tailPrintsJSONLinesWhenPiped() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/ping.lua", "return function(e) log.info('tail sees this') end\n")
        let app = try await buildApplication(configuration: try await Self.configuration(handlers), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let tail = try MoonhookProcess(["tail", "--url", "http://127.0.0.1:\(port)", "--source", "s"], environment: ["MOONHOOK_ADMIN_TOKEN": "admin-token"])
            defer { if tail.process.isRunning { tail.process.terminate() } }
            let lines = LogLines(tail.stdout)
            var seen: [[String: Any]] = []
            // Until the attempt that logged the line has ended too.
            for attempt in 0..<150 where !seen.contains(where: { $0["kind"] as? String == "attempt" && $0["outcome"] as? String == "done" }) {
                if attempt % 10 == 0 { _ = try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"tail-\#(attempt)"}"#) }
                try await Task.sleep(for: .milliseconds(100))
                seen = lines.objects
            }
            #expect(seen.contains { $0["kind"] as? String == "delivery" && $0["source"] as? String == "s" })
            #expect(seen.contains { $0["kind"] as? String == "log" && $0["message"] as? String == "tail sees this" }, "\(seen)")
            #expect(seen.contains { $0["kind"] as? String == "attempt" && $0["outcome"] as? String == "done" })
            tail.process.terminate()
            tail.process.waitUntilExit()

            let refused = try MoonhookProcess.run(["tail", "--url", "http://127.0.0.1:\(port)"], environment: ["MOONHOOK_ADMIN_TOKEN": "wrong"])
            #expect(refused.status != 0 && refused.err.contains("the server answered 401"), "\(refused)")
        }
    }

    @Test func eventLinesAreReadAcrossChunksAndPrintedSafely() {
        var parser = ServerSentEventParser()
        let stream = "retry: 2000\n: comment\n\nevent: log\ndata: {\"a\":1}\n\n: heartbeat\n\nevent: dropped\r\ndata: {\"dropped\":3}\r\n\r\n"
        var events: [ServerSentEventParser.Event] = []
        for byte in Array(stream.utf8) { events += parser.feed([byte]) }
        #expect(events == [.init(name: "log", data: #"{"a":1}"#), .init(name: "dropped", data: #"{"dropped":3}"#)])
        let line = LiveEventText.line(
            event: "log", object: ["time": "2026-12-06T12:00:01.250Z", "source": "s", "handler": "s/a.lua", "level": "warning", "message": "hi\u{1B}[2Jthere\n", "delivery_id": "d"],
            colour: false)
        #expect(line == "12:00:01.250 log      warn  s/a.lua: hi?[2Jthere? [d]")
        #expect(LiveEventText.line(event: "dropped", object: ["dropped": 3], colour: false) == "-- 3 event(s) dropped: this reader fell behind")
    }
}

/// A reader of the live stream that stops reading while handlers log about 10 MB: a system suite
/// (`SYSTEM_SUITES` in the Makefile), run on its own, since it loads the machine.
@Suite("Live stream under load", .timeLimit(.minutes(2)))
struct LiveStreamLoadTests {
    /// A reader that stopped reading, with writes to it waiting, does not hold up a graceful
    /// shutdown: its connection is closed and the server exits.
    @Test func aStalledReaderDoesNotHoldUpShutdown() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/chatty.lua", "return function(e) for i = 1, 40 do log.info(string.rep('x', 1000), {i = i}) end end\n")
        let config = handlers.folder.appending(path: "moonhook.yaml")
        try "limits:\n  log_lines_per_second: 1000000\n".write(to: config, atomically: true, encoding: .utf8)
        let server = try MoonhookProcess(
            [
                "serve", "--config", config.path, "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store",
                "sqlite:" + handlers.folder.appending(path: "state.sqlite").path,
            ],
            environment: ["MOONHOOK_ADMIN_TOKEN": "admin-token", "MOONHOOK_LOG_LEVEL": "info"])
        defer { if server.process.isRunning { kill(server.process.processIdentifier, SIGKILL) } }
        let logs = LogLines(server.stderr)
        let address = try #require(await logs.first("moonhook listening")?["address"], "the server did not start")
        let parts = address.split(separator: ":")
        let reader = try StalledReader(host: String(parts[0]), port: Int(parts[1]) ?? 0)
        defer { reader.stop() }
        for index in 0..<150 {
            var request = HTTPClientRequest(url: "http://\(address)/hooks/s")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"type":"chatty","id":"c-\#(index)"}"#))
            #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code == 202)
        }
        var stats = HTTPClientRequest(url: "http://\(address)/admin/stats")
        stats.headers.add(name: "Authorization", value: "Bearer admin-token")
        for _ in 0..<300 {
            let body = try await HTTPClient.shared.execute(stats, timeout: .seconds(10)).body.collect(upTo: 1 << 20)
            let pairs = (try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])?["pairs"] as? [String: Int]
            if pairs?["done"] == 150 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(server.process.processIdentifier, SIGTERM)
        let clock = ContinuousClock()
        let asked = clock.now
        while server.process.isRunning, clock.now - asked < .seconds(20) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!server.process.isRunning, "the server was still running 20 s after SIGTERM, held up by the stalled reader")
        if !server.process.isRunning { #expect(server.process.terminationStatus == 0) }
    }

    /// A reader that stops reading while handlers log a lot: every delivery is accepted and runs,
    /// and once it reads again, the stream tells it how many events it lost.
    @Test func aStalledReaderLosesEventsAndIsToldHowMany() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/chatty.lua", "return function(e) for i = 1, 40 do log.info(string.rep('x', 1000), {i = i}) end end\n")
        var configuration = try await LiveStreamTests.configuration(handlers)
        configuration.limits.logLinesPerSecond = 1_000_000
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let reader = try StalledReader(host: "127.0.0.1", port: port)
            defer { reader.stop() }

            // 250 deliveries × 40 lines of 1 kB: about 10 MB of events, far more than the reader's
            // buffers and its 1024 queued events hold.
            let count = 250
            try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for batch in 0..<5 {
                    group.addTask {
                        var worst = HTTPResponse.Status.accepted
                        for index in 0..<(count / 5) {
                            let status = try await DeliveryTests.post(client, "s", #"{"type":"chatty","id":"c-\#(batch)-\#(index)"}"#).status
                            if status != .accepted { worst = status }
                        }
                        return worst
                    }
                }
                for try await status in group { #expect(status == .accepted, "a delivery was refused while the reader stalled") }
            }
            let done = try await DeliveryTests.adminUntil(client, "/admin/stats") {
                (($0["pairs"] as? [String: Int])?["done"] ?? 0) == count
            }
            #expect((done["pairs"] as? [String: Int])?["done"] == count, "not every delivery ran: \(done)")

            let report = reader.resume()
            let summary = try #require(try JSONSerialization.jsonObject(with: report) as? [String: Any], "\(String(decoding: report, as: UTF8.self))")
            let dropped = summary["dropped"] as? Int ?? 0
            let events = (summary["events"] as? [String: Int]) ?? [:]
            let logs = events["log"] ?? 0
            #expect(dropped > 0, "no drop reported: \(summary)")
            // Every event was either read or reported dropped.
            let published = count * 40 + count * 2
            let read = logs + (events["delivery"] ?? 0) + (events["attempt"] ?? 0)
            #expect(read + dropped == published, "read \(read) + dropped \(dropped) != \(published) published: \(summary)")
        }
    }

}

/// One reader of the live stream in a test: its events so far, read on demand.
final class LiveReader: @unchecked Sendable {
    // @unchecked: used by one test task at a time.
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var parser = ServerSentEventParser()
    private(set) var events: [ServerSentEventParser.Event] = []

    init(_ iterator: HTTPClientResponse.Body.AsyncIterator) {
        self.iterator = iterator
    }

    /// The next chunk as text (nil at the end); its events are kept.
    func chunk() async throws -> String? {
        guard let buffer = try await iterator.next() else { return nil }
        events += parser.feed(buffer.readableBytesView)
        return String(buffer: buffer)
    }

    /// Reads until `enough` holds for the events so far, for at most 20 seconds.
    func until(_ enough: ([ServerSentEventParser.Event]) -> Bool) async throws -> [ServerSentEventParser.Event] {
        let deadline = ContinuousClock.now + .seconds(20)
        while !enough(events) {
            guard ContinuousClock.now < deadline else { throw LiveReaderTimeout(events: events) }
            guard try await chunk() != nil else { break }
        }
        try #require(enough(events), "the stream ended before it showed what was expected")
        return events
    }
}

struct LiveReaderTimeout: Error, CustomStringConvertible {
    let events: [ServerSentEventParser.Event]
    var description: String { "the stream did not show what was expected within 20 s: \(events.map(\.data))" }
}

/// `scripts/stalled_reader.py` at work: connected to the stream, reading nothing until resumed.
final class StalledReader {
    let process = Process()
    private let output = Pipe()
    private let input = Pipe()

    init(host: String, port: Int) throws {
        let script = ReferenceSigner.root.appending(path: "scripts/stalled_reader.py").path
        if let python = ProcessInfo.processInfo.environment["MOONHOOK_PYTHON"] {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [script, host, "\(port)", "admin-token"]
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, host, "\(port)", "admin-token"]
        }
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        let said = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        try #require(said.hasPrefix("connected"), "the reader did not connect: '\(said)'")
    }

    /// Lets it read again; returns what it printed: its summary.
    func resume() -> Data {
        input.fileHandleForWriting.write(Data("go\n".utf8))
        let report = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return report
    }

    func stop() {
        if process.isRunning { process.terminate() }
    }
}
