import Foundation
import Moonhook
import MoonhookTestSupport
import Testing

/// `moonhook test`: handler tests run in the real sandbox, against real signed requests.
@Suite(.timeLimit(.minutes(2))) struct HandlerTestTests {
    static func run(_ handlers: TestHandlers, _ file: String) async -> [HandlerTestResult] {
        await HandlerTestRunner().run(file: handlers.folder.appending(path: file))
    }

    /// Every failure message of `results`, one string.
    static func failures(_ results: [HandlerTestResult]) -> String {
        results.flatMap(\.failures).joined(separator: "\n")
    }

    @Test func theExampleHandlersPassTheirTests() async throws {
        let files = try HandlerTestRunner.testFiles(in: [ReferenceSigner.root.appending(path: "handlers").path])
        #expect(files.count == 4)
        var results: [HandlerTestResult] = []
        for file in files { results += await HandlerTestRunner().run(file: file) }
        #expect(results.count >= 13)
        #expect(results.filter { !$0.passed }.isEmpty, "\(Self.failures(results))")
    }

    @Test func brokenExampleHandlersFailWithTheDifference() async throws {
        // The examples' tests read ../../fixtures: copy both folders, side by side.
        let root = try TestHandlers(copyExamples: false)
        defer { root.remove() }
        let handlers = TestHandlers(folder: root.folder.appending(path: "handlers"))
        try FileManager.default.copyItem(at: ReferenceSigner.root.appending(path: "handlers"), to: handlers.folder)
        try FileManager.default.copyItem(at: ReferenceSigner.root.appending(path: "fixtures"), to: root.folder.appending(path: "fixtures"))
        let step = handlers.folder.appending(path: "induced/step_completed.lua")
        try String(contentsOf: step, encoding: .utf8).replacingOccurrences(of: #"kv.incr("steps:" .. session, 1"#, with: #"kv.incr("step:" .. session, 2"#)
            .write(to: step, atomically: true, encoding: .utf8)
        let task = handlers.folder.appending(path: "browser-use/agent.task.status_update.lua")
        try String(contentsOf: task, encoding: .utf8).replacingOccurrences(of: "json = { text = text }", with: "json = { message = text }")
            .replacingOccurrences(of: "log.warn(\"task stopped", with: "log.error(\"task stopped")
            .write(to: task, atomically: true, encoding: .utf8)

        let counted = await Self.run(handlers, "induced/step_completed_test.lua")
        #expect(counted.map(\.passed) == [false, false, false])
        #expect(counted[0].failures.contains("kv \"step:browser_iwnx132n1\": not expected, holds 2"))
        #expect(counted[0].failures.contains("kv \"steps:browser_iwnx132n1\": expected 1, not set"))
        #expect(counted[0].failures.contains(#"result: expected {"session":"browser_iwnx132n1","steps":1}, got {"session":"browser_iwnx132n1","steps":2}"#))
        #expect(counted[2].failures == ["check: induced/step_completed_test.lua:25: expected 1, got 2\n 25 |       expect(r.result.steps, 1)"])
        #expect(counted[0].line == 6 && counted[2].line == 21)

        let tasks = await Self.run(handlers, "browser-use/agent.task.status_update_test.lua")
        #expect(tasks.filter { !$0.passed }.map(\.name) == ["a finished task posts one chat message", "a stopped task is logged as a warning"])
        let failures = Self.failures(tasks)
        #expect(failures.contains(#"call 1 (POST https://chat.example.test/hooks/moonhook): body {"message":"Task task_abc123 finished (1 so far in session_xyz)"} lacks {"text":"#))
        #expect(failures.contains(#"no warn log line matching "stopped before finishing" (logged: error "task stopped before finishing")"#))
        #expect(failures.contains(#"browser-use/agent.task.status_update.lua logged an error: "task stopped before finishing""#))
    }

    /// A source of scheme `none` whose handler `a.lua` is `handler` and whose test file is `cases`.
    static func source(_ handler: String, _ cases: String, yaml: String = "scheme: none\n") throws -> TestHandlers {
        let handlers = try TestHandlers(copyExamples: false)
        try handlers.write("s/source.yaml", yaml)
        try handlers.write("s/a.lua", handler)
        try handlers.write("s/a_test.lua", cases)
        try handlers.write("s/event.json", #"{"type":"a","n":1}"#)
        return handlers
    }

    @Test func everyExpectationFailsWhenItDoesNotHold() async throws {
        let handlers = try Self.source(
            """
            return function(event)
              kv.set("seen", event.body.n)
              http.post("https://example.test/one", { json = { n = event.body.n } })
              log.info("posted " .. event.body.n)
              return { n = event.body.n }
            end
            """,
            """
            local ok = { { url = "https://example.test/one" } }
            return {
              { name = "all hold", event = "event.json", http = ok,
                expect = { type = "a", handlers = { "s/a.lua" }, result = { n = 1 }, kv = { seen = 1 },
                           calls = { { method = "POST", url = "https://example.test/one", json = { n = 1 } } },
                           logs = { { level = "info", message = "^posted %d$" } } } },
              { name = "type", event = "event.json", http = ok, expect = { type = "b" } },
              { name = "handlers", event = "event.json", http = ok, expect = { handlers = {} } },
              { name = "result", event = "event.json", http = ok, expect = { result = { n = 2 } } },
              { name = "kv", event = "event.json", http = ok, expect = { kv = { seen = 1, other = "x" } } },
              { name = "calls", event = "event.json", http = ok, expect = { calls = { { method = "GET", url = "https://example.test/one" } } } },
              { name = "json", event = "event.json", http = ok, expect = { calls = { { url = "https://example.test/one", json = { n = 2 } } } } },
              { name = "no stub", event = "event.json" },
              { name = "unused stub", event = "event.json", http = { ok[1], { method = "GET", url = "https://example.test/two" } } },
              { name = "logs", event = "event.json", http = ok, expect = { logs = { { level = "warn", message = "posted" } } } },
              { name = "error", event = "event.json", http = ok, expect = { error = "boom" } },
              { name = "refused", event = "event.json", http = ok, expect = { refused = "signature" } },
              { name = "check", event = "event.json", http = ok, check = function(r) expect(r.calls[1].json.n, 3, "posted n") end },
              { name = "match", event = "event.json", http = ok, check = function(r) expect.match(r.logs[1].message, "^sent") end },
            }
            """)
        defer { handlers.remove() }
        let results = await Self.run(handlers, "s/a_test.lua")
        let byName = Dictionary(results.map { ($0.name, $0.failures) }, uniquingKeysWith: { $1 })
        #expect(byName["all hold"] == [], "\(byName["all hold"] ?? [])")
        #expect(byName["type"] == ["event type: expected 'b', got 'a'"])
        #expect(byName["handlers"] == ["handlers run: expected none, got s/a.lua"])
        #expect(byName["result"] == [#"result: expected {"n":2}, got {"n":1}"#])
        #expect(byName["kv"] == [#"kv "other": expected "x", not set"#])
        #expect(byName["calls"] == ["call 1: expected GET https://example.test/one, got POST https://example.test/one"])
        #expect(byName["json"] == [#"call 1 (POST https://example.test/one): body {"n":1} lacks {"n":2}"#])
        #expect(byName["no stub"]?.first?.hasPrefix("handler failed: s/a.lua:3: http.request: no canned response for POST https://example.test/one") == true, "\(byName["no stub"] ?? [])")
        #expect(byName["no stub"]?.last == "call 1: POST https://example.test/one has no canned response in the case's http list")
        #expect(byName["unused stub"] == ["canned response http[2] (GET https://example.test/two) was not used"])
        #expect(byName["logs"] == [#"no warn log line matching "posted" (logged: info "posted 1")"#])
        #expect(byName["error"] == [#"expected an error matching "boom", the handlers succeeded"#])
        #expect(byName["refused"] == [#"expected the request to be refused ("signature"), it was accepted as type 'a'"#])
        #expect(byName["check"] == ["check: s/a_test.lua:18: posted n: expected 3, got 1\n 18 |   { name = \"check\", event = \"event.json\", http = ok, check = function(r) expect(r.calls[1].json.n, 3, \"posted n\") end },"])
        #expect(byName["match"]?.first?.hasPrefix(#"check: s/a_test.lua:19: expected text matching "^sent", got "posted 1""#) == true)
        #expect(results.map(\.line) == [3] + Array(7...19).map { Optional($0) }, "each case's line is the one that names it")
    }

    @Test func eachCaseStartsFromItsOwnWorld() async throws {
        let handlers = try Self.source(
            """
            local calls = 0   -- per worker: a fresh one per case
            return function(event)
              calls = calls + 1
              local before = kv.get("count")
              kv.incr("count")
              kv.set("short", "x", { ttl = 2 })
              local t0, c0 = time.now(), os.clock()
              time.sleep(60000)   -- twice the longest sleep: a real one would pass the 10 s invocation limit
              time.sleep(60000)
              return { calls = calls, before = before or json.null, now = t0, iso = time.iso(), date = os.date("!%Y-%m-%dT%H:%M:%S", os.time()),
                       waited = time.now() - t0, clock = os.clock() - c0, short = kv.get("short") or json.null, attempt = event.attempt }
            end
            """,
            """
            return {
              now = "2026-05-01T10:00:00Z",
              { name = "first", event = "event.json",
                expect = { result = { calls = 1, before = json.null, now = 1777629600, iso = "2026-05-01T10:02:00.000Z", date = "2026-05-01T10:02:00",
                                      waited = 120, clock = 120, short = json.null, attempt = 1 }, kv = { count = 1 } } },
              { name = "second, seeded, later", event = "event.json", kv = { count = 41 }, now = 0, attempt = 3,
                expect = { result = { calls = 1, before = 41, now = 0, iso = "1970-01-01T00:02:00.000Z", date = "1970-01-01T00:02:00",
                                      waited = 120, clock = 120, short = json.null, attempt = 3 }, kv = { count = 42 } } },
            }
            """)
        defer { handlers.remove() }
        let results = await Self.run(handlers, "s/a_test.lua")
        #expect(results.map(\.passed) == [true, true], "\(Self.failures(results))")
    }

    @Test func casesAreSignedWithTheirSecretsAndTheSourcesScheme() async throws {
        let handlers = try Self.source(
            "return function(event) return { secret = secrets.API_KEY, hook = secrets.OTHER, signed = event.headers['x-signature'] ~= nil, kind = event.type } end",
            """
            local push = { ["X-Event"] = "push" }
            return {
              secrets = { API_KEY = "from-the-file" },
              { name = "file secrets and placeholders", event = "event.json", headers = push,
                expect = { result = { secret = "from-the-file", hook = "test-OTHER", signed = true, kind = "push" } } },
              { name = "case secrets", event = "event.json", headers = push, secrets = { API_KEY = "k2", HOOK_SECRET = "s2" },
                expect = { result = { secret = "k2", hook = "test-OTHER", signed = true, kind = "push" } } },
              { name = "type written where the source reads it", event = "event.json", type = "tag", expect = { type = "tag", handlers = {} } },
              { name = "a header breaking the signature", event = "event.json", headers = { ["X-Event"] = "push", ["X-Signature"] = "sha256=00" },
                expect = { refused = "signature" } },
              { name = "an inline body", body = { n = 2 }, headers = push, check = function(r) expect(r.type, "push") end },
            }
            """,
            yaml: "scheme: hmac\nheader: X-Signature\nprefix: \"sha256=\"\nsecrets:\n  - ${HOOK_SECRET}\ntype: header:X-Event\nhandler_secrets:\n  - API_KEY\n  - OTHER\n")
        defer { handlers.remove() }
        try FileManager.default.moveItem(at: handlers.folder.appending(path: "s/a.lua"), to: handlers.folder.appending(path: "s/push.lua"))
        let results = await Self.run(handlers, "s/a_test.lua")
        #expect(results.map(\.passed) == [true, true, true, true, true], "\(Self.failures(results))")
    }

    @Test func aTestFileThatCannotRunSaysWhyAndWhere() async throws {
        let handlers = try Self.source("return function() end", "return {\n  { name = 'x', event = 'event.json', expcet = {} },\n}\n")
        defer { handlers.remove() }
        #expect(Self.failures(await Self.run(handlers, "s/a_test.lua")) == "case 1: unknown field 'expcet' (did you mean 'expect'?)")
        try handlers.write("s/a_test.lua", "return {\n  { name = 'x' event = 'event.json' },\n}\n")
        let syntax = await Self.run(handlers, "s/a_test.lua")
        #expect(syntax.map(\.name) == ["(the test file)"])
        #expect(Self.failures(syntax) == "s/a_test.lua:2: '}' expected near 'event'\n 2 |   { name = 'x' event = 'event.json' },\n   |                ^^^^^")
        try handlers.write("s/a_test.lua", "return { { name = 'x', event = 'missing.json' }, { name = 'y', body = '{}', expect = { kv = 3 } }, { name = 'z' } }")
        #expect(await Self.run(handlers, "s/a_test.lua").map(\.failures) == [
            ["case 1: cannot read the event file \(handlers.folder.path)/s/missing.json"],
            ["case 2: expect: 'kv' must be a table of named entries"],
            ["case 3: give 'event' (a fixture file, relative to the test file) or 'body'"],
        ])
        try handlers.write("s/a_test.lua", "return 42")
        #expect(Self.failures(await Self.run(handlers, "s/a_test.lua")) == "s/a_test.lua: a test file must return a table of cases")
        try handlers.write("s/a_test.lua", "while true do end")
        #expect(Self.failures(await Self.run(handlers, "s/a_test.lua")).contains("instruction"), "the server's limits hold in test files too")
    }

    @Test func theLoaderNeverTakesATestFileForAHandler() async throws {
        let handlers = try Self.source("return function() return 1 end", "return { { name = 'x', event = 'event.json' } }")
        defer { handlers.remove() }
        let check = try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path]) }
        #expect(check.status == 0)
        #expect(check.out == "ok: s (none, 1 handlers)\n", "a_test.lua returns no handler, and is not loaded as one")
    }

    @Test func theCommandExitsOneOnAFailureAndWritesJUnitAndJSON() async throws {
        let handlers = try Self.source(
            "return function() return 1 end", "return { { name = 'passes', event = 'event.json', expect = { result = 1 } }, { name = 'fails <&>', event = 'event.json', expect = { result = 2 } } }")
        defer { handlers.remove() }
        let junit = handlers.folder.appending(path: "junit.xml").path
        let text = try await MoonhookProcess.detached { try MoonhookProcess.run(["test", "--handlers", handlers.folder.path, "--junit", junit]) }
        #expect(text.status == 1)
        #expect(text.out.hasPrefix("ok   s/a_test.lua:1: passes ("), "\(text.out)")
        #expect(text.out.contains("FAIL s/a_test.lua:1: fails <&> ("))
        #expect(text.out.contains("       result: expected 2, got 1\n"))
        #expect(text.out.contains("1 test file, 2 cases: 1 of 2 failed"))
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains(#"<testsuite name="s/a_test.lua" tests="2" failures="1""#))
        #expect(xml.contains(#"<testcase classname="s/a_test.lua" name="fails &lt;&amp;&gt;""#))
        #expect(xml.contains(#"<failure message="result: expected 2, got 1">"#))
        let json = try await MoonhookProcess.detached { try MoonhookProcess.run(["test", "--json", handlers.folder.appending(path: "s").path, "--handlers", handlers.folder.path]) }
        #expect(json.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        #expect(object["passed"] as? Int == 1 && object["failed"] as? Int == 1)
        let cases = try #require(object["cases"] as? [[String: Any]])
        #expect(cases.map { $0["name"] as? String } == ["passes", "fails <&>"])
        #expect(cases[1]["failures"] as? [String] == ["result: expected 2, got 1"])
        try handlers.write("s/a_test.lua", "return { { name = 'passes', event = 'event.json', expect = { result = 1 } } }")
        let passing = try await MoonhookProcess.detached { try MoonhookProcess.run(["test", "--handlers", handlers.folder.path]) }
        #expect(passing.status == 0)
        #expect(passing.out.hasSuffix("1 test file, 1 case: all 1 passed (\(passing.out.split(separator: "(").last!)"))
        let missing = try await MoonhookProcess.detached { try MoonhookProcess.run(["test", handlers.folder.appending(path: "nowhere").path]) }
        #expect(missing.status == 1)
        #expect(missing.err.contains("nowhere: no such file or folder"))
    }

    @Test func watchRunsAgainWhenAFileChanges() async throws {
        let handlers = try Self.source("return function() return 1 end", "return { { name = 'one', event = 'event.json', expect = { result = 1 } } }")
        defer { handlers.remove() }
        let process = try MoonhookProcess(["test", "--watch", "--handlers", handlers.folder.path])
        let output = OutputText(process.stdout)
        defer {
            process.process.terminate()
            process.process.waitUntilExit()
            // Ends the pipe's monitoring, which holds the reader (and what it read) until then.
            process.stdout.fileHandleForReading.readabilityHandler = nil
        }
        try await output.wait(for: "all 1 passed", timeout: .seconds(30))
        try handlers.write("s/a.lua", "return function() return 2 end")
        try await output.wait(for: "1 of 1 failed", timeout: .seconds(30))
        #expect(output.text.contains("result: expected 1, got 2"))
    }
}

/// A process's standard output as it comes.
final class OutputText: @unchecked Sendable {
    // @unchecked: `collected` is only touched with `lock` held.
    private let lock = NSLock()
    private var collected = Data()

    init(_ pipe: Pipe) {
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            lock.lock()
            collected.append(data)
            lock.unlock()
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: collected, as: UTF8.self)
    }

    func wait(for needle: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(needle) {
            guard ContinuousClock.now < deadline else { throw HandlerTestError("'\(needle)' did not appear within \(timeout); output: \(text)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

struct HandlerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
