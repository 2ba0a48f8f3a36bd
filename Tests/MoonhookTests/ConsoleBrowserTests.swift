import Foundation
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing

/// The console in a real browser: Debian's headless Chromium, driven by selenium through
/// `scripts/console_browser.py` against a server of this test. One browser launch signs in, finds
/// a delivery the test posted, opens it, replays it and sees the new attempt, and watches a live
/// log line arrive; it saves a screenshot of each page under `.build/console-screenshots/`
/// (`make screenshots` copies them to docs/images/).
@Suite("Console in a browser", .timeLimit(.minutes(3)))
struct ConsoleBrowserTests {
    static let screenshots = ReferenceSigner.root.appending(path: ".build/console-screenshots")

    @Test func anOperatorsWalkThroughTheConsole() async throws {
        // `make test` installs these; a run without them fails, never skips.
        for part in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(FileManager.default.isExecutableFile(atPath: part), "\(part) is missing: run make test-deps (Debian's chromium and chromium-driver)")
        }
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("demo/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("demo/ping.lua", "return function(e) log.info('ping seen', {id = e.id}) end\n")
        try handlers.write("demo/charge.lua", "return { retries = 0, handle = function(e) log.warn('card declined', {id = e.id}) error('payment service answered 502') end }\n")
        var configuration = try await DeliveryTests.configuration(handlers)
        configuration.deliveries.lease = .seconds(60)
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // Some history for the pages: deliveries that ran, and two whose handler failed.
            for index in 1...3 { _ = try await DeliveryTests.post(client, "demo", #"{"type":"ping","id":"earlier-\#(index)"}"#) }
            for index in 1...2 { _ = try await DeliveryTests.post(client, "demo", #"{"type":"charge","id":"charge-\#(index)","amount":1200}"#) }
            try? FileManager.default.removeItem(at: Self.screenshots)
            let script = ReferenceSigner.root.appending(path: "scripts/console_browser.py").path
            let arguments = [script, "--url", "http://127.0.0.1:\(port)", "--token", "admin-token", "--screenshots", Self.screenshots.path, "--source", "demo"]
            // On a thread of its own: the walk takes seconds, and the server needs the concurrency pool meanwhile.
            let output = try await withCheckedThrowingContinuation { continuation in
                Thread.detachNewThread { continuation.resume(with: Result { try ReferenceSigner.python(arguments) }) }
            }
            let text = String(decoding: output, as: UTF8.self)
            #expect(text.contains("ok: all"), "\(text)")
            for page in ["overview", "deliveries", "delivery", "sources", "refusals", "live"] {
                #expect(FileManager.default.fileExists(atPath: Self.screenshots.appending(path: "\(page).png").path), "no screenshot of \(page)")
            }
        }
    }
}
