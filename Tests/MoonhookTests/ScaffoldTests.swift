import Foundation
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import Testing
import WebhookVerification

/// `moonhook new` and `moonhook fixture`: from nothing, or from a delivery seen in production, to a
/// passing test.
@Suite(.timeLimit(.minutes(2))) struct ScaffoldTests {
    @Test func aNewSourcePassesItsOwnTestsAndCheckForEveryScheme() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        var environment: [String: String] = [:]
        for scheme in VerificationScheme.allCases {
            let event = scheme == .twilio ? "message.received" : "order.created"
            let scaffold = try SourceScaffold(source: "s-\(scheme.rawValue)", events: [event], scheme: scheme)
            let written = try scaffold.write(to: handlers.folder)
            #expect(written.contains("s-\(scheme.rawValue)/\(event)_test.lua") && written.contains("moonhook.d.lua"))
            let secret = "\(scaffold.source.uppercased().replacingOccurrences(of: "-", with: "_"))_WEBHOOK_SECRET"
            environment[secret] = "whsec_" + Data("secret".utf8).base64EncodedString()
        }
        let files = try HandlerTestRunner.testFiles(in: [handlers.folder.path])
        #expect(files.count == VerificationScheme.allCases.count)
        for file in files {
            let results = await HandlerTestRunner().run(file: file)
            #expect(results.count == 1 && results[0].passed, "\(file.lastPathComponent): \(results.flatMap(\.failures))")
        }
        let secrets = environment
        let check = try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path], environment: secrets) }
        #expect(check.status == 0, "\(check.out)")
        #expect(FileManager.default.fileExists(atPath: handlers.folder.appending(path: ".luarc.json").path))

        // Nothing that exists is written again; a handler that changed stays as it is.
        try handlers.write("s-none/order.created.lua", "return function() return 'mine' end")
        let again = try SourceScaffold(source: "s-none", events: ["order.created", "order.paid"], scheme: .none).write(to: handlers.folder)
        #expect(again == ["s-none/order.paid.lua", "s-none/order.paid_test.lua", "s-none/fixtures/order.paid.json", "moonhook.d.lua"])
        #expect(try String(contentsOf: handlers.folder.appending(path: "s-none/order.created.lua"), encoding: .utf8) == "return function() return 'mine' end")
        #expect(throws: SourceScaffold.Failure.self) { try SourceScaffold(source: "s", events: ["order_test"], scheme: .none) }
        #expect(throws: SourceScaffold.Failure.self) { try SourceScaffold(source: "../s", events: [], scheme: .none) }
    }

    @Test func aStoredDeliveryBecomesAFixtureAndACase() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        let secret = "gh-secret-1234"
        try handlers.write("github/source.yaml", "scheme: github\nsecrets:\n  - ${GITHUB_SECRET}\n")
        try handlers.write("github/push.lua", "return function(event) return { ref = event.body.ref, custom = event.headers['x-custom'] } end")
        let location = "sqlite:" + handlers.folder.appending(path: "state.sqlite").path
        let store = try await StoreLocation(location).open(logger: LogRecords().logger())
        let body = #"{"ref":"refs/heads/main","note":"leaked \#(secret)"}"#
        let delivery = InboxDelivery(
            source: "github", id: "d-1", type: "push", receivedAt: Date(),
            headers: ["x-hub-signature-256": "sha256=abc", "x-github-event": "push", "x-github-delivery": "d-1", "x-custom": "token \(secret)", "content-type": "application/json", "host": "hooks.example.com"],
            body: Array(body.utf8), handlers: ["github/push.lua"])
        _ = try await store.append(delivery, retention: .seconds(3600), claimed: false, lease: .seconds(30))
        await store.close()

        let result = try await MoonhookProcess.detached {
            try MoonhookProcess.run(["fixture", "d-1", "--store", location, "--handlers", handlers.folder.path], environment: ["GITHUB_SECRET": secret])
        }
        #expect(result.status == 0, "\(result.err)")
        let fixture = handlers.folder.appending(path: "github/fixtures/push.1.json")
        #expect(result.err == "wrote \(fixture.relativePath)\n")
        #expect(try String(contentsOf: fixture, encoding: .utf8) == #"{"ref":"refs/heads/main","note":"leaked [redacted]"}"#)
        #expect(result.out == """
              {
                name = "delivery 1 (push, d-1)",
                event = "fixtures/push.1.json",
                type = "push",
                headers = {
                  ["x-custom"] = "token [redacted]",
                  ["x-github-delivery"] = "d-1",
                },
                expect = {
                  -- what must follow: kv, calls, logs, result, error (docs/handlers.md)
                },
              },

            """)
        // The case runs as printed.
        try handlers.write("github/push_test.lua", "return {\n" + result.out + "}\n")
        let results = await HandlerTestRunner().run(file: handlers.folder.appending(path: "github/push_test.lua"))
        #expect(results.map(\.passed) == [true], "\(results.flatMap(\.failures))")
        let again = try await MoonhookProcess.detached { try MoonhookProcess.run(["fixture", "1", "--store", location, "--handlers", handlers.folder.path]) }
        #expect(again.status != 0 && again.err.contains("exists already"))
    }
}
