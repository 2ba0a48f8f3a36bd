import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing

/// The `moonhook` executable, run as a user would.
struct MoonhookProcess {
    /// The binary built next to the test bundle (`swift build --build-tests` builds both).
    static var binary: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appending(path: "moonhook")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return ReferenceSigner.root.appending(path: ".build/debug/moonhook")
    }

    let process = Process()
    let stdout = Pipe()
    let stderr = Pipe()

    init(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) throws {
        process.executableURL = Self.binary
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    /// Runs to the end and returns exit status, standard output and standard error.
    static func run(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) throws -> (status: Int32, out: String, err: String) {
        let running = try MoonhookProcess(arguments, environment: environment, directory: directory)
        let out = running.stdout.fileHandleForReading.readDataToEndOfFile()
        let err = running.stderr.fileHandleForReading.readDataToEndOfFile()
        running.process.waitUntilExit()
        return (running.process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Runs blocking work (waiting for a process) off the cooperative pool, which a server under
    /// test needs.
    static func detached<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }
}

/// Reads a process's JSON lines as they come: a serving process's log (stderr is not a terminal,
/// so it is JSON), `moonhook tail`'s events.
final class LogLines: @unchecked Sendable {
    // @unchecked: `lines` and `partial` are only touched with `lock` held.
    private let lock = NSLock()
    private var lines: [[String: Any]] = []
    private var partial = Data()

    init(_ pipe: Pipe) {
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            lock.lock()
            defer { lock.unlock() }
            partial.append(data)
            while let newline = partial.firstIndex(of: 10) {
                let line = partial[partial.startIndex..<newline]
                partial = Data(partial[partial.index(after: newline)...])
                if let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] { lines.append(object) }
            }
        }
    }

    /// Every line read so far.
    var objects: [[String: Any]] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    /// The lines whose values are all strings (log lines).
    var all: [[String: String]] { objects.compactMap { $0 as? [String: String] } }

    func first(_ message: String, within seconds: Double = 20) async -> [String: String]? {
        for _ in 0..<Int(seconds * 100) {
            if let line = all.first(where: { $0["msg"] == message }) { return line }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}

@Suite("The moonhook command", .serialized)
struct ProcessTests {
    @Test func serveFinishesInFlightWorkOnSIGTERM() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("slow/source.yaml", "scheme: token\ntoken: header:X-Token\nsecrets: [\"${SLOW_TOKEN}\"]\n")
        try handlers.write("slow/work.lua", "return function(e) time.sleep(800) log.info('slow work done', {id = e.id}) end")
        let server = try MoonhookProcess(
            ["serve", "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store", "sqlite:" + handlers.folder.appending(path: "state.sqlite").path],
            environment: ["SLOW_TOKEN": "t", "MOONHOOK_LOG_LEVEL": "info"])
        let logs = LogLines(server.stderr)
        let listening = try #require(await logs.first("moonhook listening"), "no 'moonhook listening' line: \(logs.all)")
        let address = try #require(listening["address"])
        var request = HTTPClientRequest(url: "http://\(address)/hooks/slow")
        request.method = .POST
        request.headers.add(name: "X-Token", value: "t")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"type":"work","n":1}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        #expect(response.status.code == 202)
        kill(server.process.processIdentifier, SIGHUP)
        #expect(await logs.first("reloading every source (SIGHUP)") != nil)
        #expect(await logs.first("source reloaded") != nil)
        kill(server.process.processIdentifier, SIGTERM)
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        #expect(logs.all.contains { $0["msg"] == "slow work done" }, "the in-flight handler was cut short: \(logs.all.map { $0["msg"] ?? "" })")
    }

    /// Two servers share one SQLite file; concurrent kv.incr from both lose no update.
    @Test func twoServersShareOneStore() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("counter/source.yaml", "scheme: none\n")
        try handlers.write("counter/hit.lua", "return function() kv.incr('hits') end")
        let store = handlers.folder.appending(path: "shared.sqlite").path
        var servers: [(MoonhookProcess, String)] = []
        defer { for (server, _) in servers { kill(server.process.processIdentifier, SIGKILL) } }
        for _ in 0..<2 {
            let server = try MoonhookProcess(["serve", "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store", "sqlite:" + store])
            let logs = LogLines(server.stderr)
            let address = await logs.first("moonhook listening")?["address"]
            servers.append((server, address ?? ""))
            try #require(address != nil, "server did not start: \(logs.all)")
        }
        let addresses = servers.map(\.1)
        let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
            for address in addresses {
                for _ in 0..<4 {
                    group.addTask {
                        var accepted = 0
                        for _ in 0..<25 {
                            var request = HTTPClientRequest(url: "http://\(address)/hooks/counter")
                            request.method = .POST
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.body = .bytes(ByteBuffer(string: #"{"type":"hit","n":"\#(UUID().uuidString)"}"#))
                            if try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code == 202 { accepted += 1 }
                        }
                        return accepted
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(accepted == 200)
        for (server, _) in servers {
            kill(server.process.processIdentifier, SIGTERM)
            server.process.waitUntilExit()
            #expect(server.process.terminationStatus == 0)
        }
        let shared = try await openStore(store, logger: LogRecords().logger())
        #expect(try await shared.get("counter", "hits") == Array("200".utf8))
        await shared.close()
    }

    @Test func checkPrintsEveryProblemAndExitsOne() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("good/source.yaml", "scheme: none\n")
        try handlers.write("good/a.lua", "return function() end")
        let clean = try MoonhookProcess.run(["check", "--handlers", handlers.folder.path])
        #expect(clean.status == 0)
        #expect(clean.out == "ok: good (none, 1 handlers)\n")
        try handlers.write("bad/source.yaml", "scheme: hmac\nalgorithm: md5\nsecret: x\n")
        try handlers.write("worse/source.yaml", "scheme: none\n")
        try handlers.write("worse/b.lua", "return function()\n  return 1 +\nend")
        let broken = try MoonhookProcess.run(["check", "--handlers", handlers.folder.path])
        #expect(broken.status == 1)
        #expect(broken.out.contains("bad/source.yaml: 'algorithm' must be sha1, sha256 or sha512\n"))
        #expect(broken.out.contains("worse/b.lua:3: unexpected symbol near 'end'\n 3 | end\n   | ^^^\n"), "the line and a caret under the token: \(broken.out)")
        try handlers.write("worse/b.lua", "return function(e)\n\tlocal x = (1 + 2\n\tlog.info(x)\nend")
        let unclosed = try MoonhookProcess.run(["check", "--handlers", handlers.folder.path])
        #expect(unclosed.out.contains("worse/b.lua:3: ')' expected (to close '(' at line 2) near 'log'\n 3 |     log.info(x)\n   |     ^^^\n"), "\(unclosed.out)")
    }

    @Test func signPrintsWhatTheSenderWouldSend() throws {
        let body = ReferenceSigner.root.appending(path: "fixtures/browser-use/test.json")
        let result = try MoonhookProcess.run(
            ["sign", "browser-use", body.path, "--handlers", ReferenceSigner.root.appending(path: "handlers").path],
            environment: ["BROWSER_USE_WEBHOOK_SECRET": "sign-test"])
        #expect(result.status == 0, "\(result.err)")
        let expected = try ReferenceSigner.sign("browser-use", secret: "sign-test", body: Array(try Data(contentsOf: body)))
        #expect(result.out == "X-Webhook-Signature: \(expected[0].value)\n")
    }

    /// `--set` (JSON pointer), `--type` (where the source reads it) and `--header` change what is
    /// signed and sent; the signature is the sender's over the changed body.
    @Test func signAndSendTakeOverrides() async throws {
        let handlersFolder = ReferenceSigner.root.appending(path: "handlers").path
        let fixture = ReferenceSigner.root.appending(path: "fixtures/browser-use/agent.task.status_update.json").path
        let signed = try MoonhookProcess.run(
            [
                "sign", "browser-use", fixture, "--handlers", handlersFolder, "--set", "/payload/status=stopped", "--set", "/payload/attempt=3",
                "--set", "/payload/tags/-=\"x\"", "--type", "agent.task.created", "--header", "X-Extra: 1",
            ],
            environment: ["BROWSER_USE_WEBHOOK_SECRET": "sign-test"])
        #expect(signed.status != 0 && signed.err.contains("/payload/tags/-: there is no member 'tags' to go into"), "\(signed)")
        let result = try MoonhookProcess.run(
            [
                "sign", "browser-use", fixture, "--handlers", handlersFolder, "--set", "/payload/status=stopped", "--set", "/payload/attempt=3",
                "--set", "/payload/note=\"a b\"", "--type", "agent.task.created", "--header", "X-Extra: 1",
            ],
            environment: ["BROWSER_USE_WEBHOOK_SECRET": "sign-test"])
        #expect(result.status == 0, "\(result.err)")
        let parts = result.out.components(separatedBy: "\n\n")
        try #require(parts.count == 2, "\(result.out)")
        let body = Array(parts[1].trimmingCharacters(in: .newlines).utf8)
        #expect(String(decoding: body, as: UTF8.self).hasPrefix(#"{"type":"agent.task.created","timestamp":"#), "member order kept")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let payload = try #require(object["payload"] as? [String: Any])
        #expect(payload["status"] as? String == "stopped" && payload["attempt"] as? Int == 3 && payload["note"] as? String == "a b")
        #expect(payload["taskId"] as? String == "task_abc123", "an untouched value changed")
        let expected = try ReferenceSigner.sign("browser-use", secret: "sign-test", body: body)
        #expect(parts[0] == "X-Webhook-Signature: \(expected[0].value)\nX-Extra: 1", "\(parts[0])")

        // send: the server verifies what was signed and routes on the type written where induced reads it.
        let handlers = try TestHandlers()
        defer { handlers.remove() }
        var configuration = try await DeliveryTests.configuration(handlers)
        configuration.adminToken = "admin-token"
        let app = try await buildApplication(
            configuration: configuration, environment: ["INDUCED_WEBHOOK_TOKEN": "tok", "BROWSER_USE_WEBHOOK_SECRET": "s", "CHAT_WEBHOOK_URL": ""],
            logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let sent = try MoonhookProcess.run(
                [
                    "send", "http://127.0.0.1:\(port)/hooks/induced", "induced", ReferenceSigner.root.appending(path: "fixtures/induced/step_completed.json").path,
                    "--handlers", handlers.folder.path, "--type", "browser_ready",
                ],
                environment: ["INDUCED_WEBHOOK_TOKEN": "tok"])
            #expect(sent.status == 0 && sent.out.hasPrefix("202 "), "\(sent)")
            #expect(sent.out.contains(#""type":"browser_ready""#), "\(sent.out)")
            let refused = try MoonhookProcess.run(
                [
                    "send", "http://127.0.0.1:\(port)/hooks/induced", "induced", ReferenceSigner.root.appending(path: "fixtures/induced/step_completed.json").path,
                    "--handlers", handlers.folder.path, "--header", "X-Webhook-Token: wrong",
                ],
                environment: ["INDUCED_WEBHOOK_TOKEN": "tok"])
            #expect(refused.status == 1 && refused.out.hasPrefix("401 "), "a header set after signing replaces the signature's: \(refused)")
        }
    }

    /// A `.form` fixture is signed as a form: Twilio signs its fields, not its bytes.
    @Test func signSignsFormFixtures() throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("twilio/source.yaml", "scheme: twilio\nsecret: ${TWILIO_AUTH_TOKEN}\npublic_url: https://hooks.example.com/hooks/twilio\n")
        let fields = "MessageSid=SM1&From=%2B15551234567&Body=Hi+there&SmsStatus=received"
        try handlers.write("sms.form", fields)
        let result = try MoonhookProcess.run(
            ["sign", "twilio", handlers.folder.appending(path: "sms.form").path, "--handlers", handlers.folder.path], environment: ["TWILIO_AUTH_TOKEN": "tok"])
        #expect(result.status == 0, "\(result.err)")
        let expected = try ReferenceSigner.sign("twilio", secret: "tok", body: Array(fields.utf8), url: "https://hooks.example.com/hooks/twilio")
        #expect(result.out == "X-Twilio-Signature: \(expected[0].value)\n")
        let asJSON = try MoonhookProcess.run(
            ["sign", "twilio", handlers.folder.appending(path: "sms.form").path, "--content-type", "application/json", "--handlers", handlers.folder.path],
            environment: ["TWILIO_AUTH_TOKEN": "tok"])
        #expect(asJSON.status != 0 && asJSON.err.contains("twilio signs form fields"))
        // A form field set before signing: the signature covers the changed fields.
        let changed = try MoonhookProcess.run(
            ["sign", "twilio", handlers.folder.appending(path: "sms.form").path, "--set", "/Body=Bye now", "--handlers", handlers.folder.path],
            environment: ["TWILIO_AUTH_TOKEN": "tok"])
        #expect(changed.status == 0, "\(changed.err)")
        let changedFields = "MessageSid=SM1&From=%2B15551234567&Body=Bye+now&SmsStatus=received"
        let resigned = try ReferenceSigner.sign("twilio", secret: "tok", body: Array(changedFields.utf8), url: "https://hooks.example.com/hooks/twilio")
        #expect(changed.out == "X-Twilio-Signature: \(resigned[0].value)\n\n\(changedFields)\n", "\(changed.out)")
    }

    /// A `.form` event is read as the server reads a form: its fields, or the JSON of the source's
    /// `form_json` field (the `slack` scheme's `payload`).
    @Test func runReadsFormEvents() throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("slack/source.yaml", "scheme: slack\nsecret: ${SLACK_SIGNING_SECRET}\n")
        try handlers.write("slack/deploy.lua", "return function(e) return e.body.text .. ' by ' .. e.body.user_id end")
        try handlers.write("slack/block_actions.lua", "return function(e) return e.body.actions[1].action_id end")
        try handlers.write("deploy.form", "command=%2Fdeploy&text=prod+now&user_id=U1")
        try handlers.write("click.form", "payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22approve%22%7D%5D%7D")
        let folder = handlers.folder
        let command = try MoonhookProcess.run(
            ["run", folder.appending(path: "slack/deploy.lua").path, "--event", folder.appending(path: "deploy.form").path, "--handlers", folder.path])
        #expect(command.status == 0, "\(command.err)")
        #expect(command.out.contains("returned: prod now by U1"))
        let click = try MoonhookProcess.run(
            ["run", folder.appending(path: "slack/block_actions.lua").path, "--event", folder.appending(path: "click.form").path, "--handlers", folder.path])
        #expect(click.status == 0, "\(click.err)")
        #expect(click.out.contains("returned: approve"))
    }

    @Test func runExitsWithTheHandlersOutcome() throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/ok.lua", "return function(e) log.info('hello', {n = e.body.n}) return e.body.n * 2 end")
        try handlers.write("s/fails.lua", "return function(e)\n  error('nope ' .. e.body.n)\nend")
        try handlers.write("event.json", #"{"n": 21}"#)
        let event = handlers.folder.appending(path: "event.json").path
        let ok = try MoonhookProcess.run(["run", handlers.folder.appending(path: "s/ok.lua").path, "--event", event, "--handlers", handlers.folder.path])
        #expect(ok.status == 0)
        #expect(ok.out.contains("hello"))
        #expect(ok.out.contains("returned: 42"))
        let failed = try MoonhookProcess.run(["run", handlers.folder.appending(path: "s/fails.lua").path, "--event", event, "--handlers", handlers.folder.path])
        #expect(failed.status == 1)
        #expect(failed.err == "error: s/fails.lua:2: nope 21\n 2 |   error('nope ' .. e.body.n)\n")
    }
}

/// A dispatcher whose every slot is taken waits for one to come free: it does not look at the
/// inbox again and again meanwhile (a busy loop there once took a whole core and starved the
/// server of it).
@Suite("Full slots", .serialized)
struct FullSlotsTests {
    /// CPU seconds a process has used so far (user and system), from /proc.
    static func cpuSeconds(_ pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test func aServerWithEverySlotTakenStaysIdle() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write("s/slow.lua", "return function(e) time.sleep(3000) end")
        let config = handlers.folder.appending(path: "moonhook.yaml").path
        try "max_concurrent_invocations: 1\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try MoonhookProcess(
            ["serve", "--config", config, "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store", "sqlite:" + handlers.folder.appending(path: "state.sqlite").path],
            environment: ["MOONHOOK_LOG_LEVEL": "notice"])
        defer {
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
        }
        let logs = LogLines(server.stderr)
        let address = try #require(await logs.first("moonhook listening")?["address"], "\(logs.all)")
        for index in 0..<3 {
            var request = HTTPClientRequest(url: "http://\(address)/hooks/s")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"type":"slow","n":\#(index)}"#))
            #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code == 202)
        }
        // One runs (asleep), two wait in the inbox for the only slot.
        try await Task.sleep(for: .milliseconds(300))
        let before = try Self.cpuSeconds(server.process.processIdentifier)
        try await Task.sleep(for: .seconds(1.5))
        let used = try Self.cpuSeconds(server.process.processIdentifier) - before
        #expect(used < 0.5, "the server used \(used) s of CPU in 1.5 s with nothing to do but wait for its slot")
    }
}
