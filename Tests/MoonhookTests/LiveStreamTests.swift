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

    /// Reads the stream at `query` until `enough` holds for the events so far (at most 20 s).
    static func read(port: Int, query: String, until enough: @escaping @Sendable ([ServerSentEventParser.Event]) -> Bool) async throws
        -> [ServerSentEventParser.Event]
    {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/admin/stream?\(query)")
        request.headers.add(name: "Authorization", value: "Bearer admin-token")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream; charset=utf-8")
        return try await withThrowingTaskGroup(of: [ServerSentEventParser.Event]?.self) { group in
            group.addTask {
                var parser = ServerSentEventParser()
                var events: [ServerSentEventParser.Event] = []
                for try await chunk in response.body {
                    events += parser.feed(chunk.readableBytesView)
                    if enough(events) { return events }
                }
                return events
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return try #require(first, "the stream did not show what was expected within 20 s")
        }
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
            async let everything = Self.read(port: port, query: "source=s") { events in
                events.contains { $0.name == "attempt" && $0.data.contains("upstream said no") } && events.contains { $0.data.contains("pinged") }
            }
            async let errors = Self.read(port: port, query: "source=s&level=error") { events in
                events.contains { $0.name == "attempt" && $0.data.contains("upstream said no") }
            }
            async let oneHandler = Self.read(port: port, query: "handler=s/fail.lua") { events in
                events.contains { $0.name == "attempt" }
            }
            // The readers subscribe as their requests arrive; what is posted before is not replayed.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await DeliveryTests.post(client, "t", #"{"type":"ping","id":"t-1"}"#).status == .accepted)
            #expect(try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"s-1","n":7}"#).status == .accepted)
            #expect(try await DeliveryTests.post(client, "s", #"{"type":"fail","id":"s-2"}"#).status == .accepted)

            let all = Self.objects(try await everything)
            #expect(all.allSatisfy { $0.1["source"] as? String == "s" }, "another source's events")
            #expect(all.contains { $0.0 == "delivery" && $0.1["delivery_id"] as? String == "s-1" && $0.1["seq"] is Int })
            let pinged = try #require(all.first { $0.0 == "log" && $0.1["message"] as? String == "pinged" })
            #expect(pinged.1["handler"] as? String == "s/ping.lua" && pinged.1["delivery_id"] as? String == "s-1")
            #expect((pinged.1["fields"] as? [String: String])?["n"] == "7")
            #expect(all.contains { $0.0 == "log" && $0.1["message"] as? String == "detail" && $0.1["level"] as? String == "debug" })
            let failed = try #require(all.first { $0.0 == "attempt" && $0.1["delivery_id"] as? String == "s-2" })
            #expect(failed.1["outcome"] as? String == "dead" && failed.1["level"] as? String == "error")
            #expect((failed.1["message"] as? String)?.contains("s/fail.lua:1: upstream said no") == true, "\(failed.1)")

            let onlyErrors = Self.objects(try await errors)
            #expect(!onlyErrors.contains { $0.0 == "log" }, "lines below error passed the level filter: \(onlyErrors.map(\.1))")
            #expect(!onlyErrors.contains { $0.0 == "attempt" && $0.1["outcome"] as? String == "done" })
            let handlerOnly = Self.objects(try await oneHandler)
            #expect(handlerOnly.allSatisfy { ($0.1["handler"] as? String ?? "s/fail.lua") == "s/fail.lua" && $0.1["source"] as? String == "s" })
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
            let reader = Process()
            let script = ReferenceSigner.root.appending(path: "scripts/stalled_reader.py").path
            if let python = ProcessInfo.processInfo.environment["MOONHOOK_PYTHON"] {
                reader.executableURL = URL(fileURLWithPath: python)
                reader.arguments = [script, "127.0.0.1", "\(port)", "admin-token"]
            } else {
                reader.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                reader.arguments = ["python3", script, "127.0.0.1", "\(port)", "admin-token"]
            }
            let output = Pipe()
            let input = Pipe()
            reader.standardOutput = output
            reader.standardInput = input
            try reader.run()
            defer { if reader.isRunning { reader.terminate() } }
            let said = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            try #require(said.hasPrefix("connected"), "the reader did not connect: '\(said)'")

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

            input.fileHandleForWriting.write(Data("go\n".utf8))
            let report = output.fileHandleForReading.readDataToEndOfFile()
            reader.waitUntilExit()
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
