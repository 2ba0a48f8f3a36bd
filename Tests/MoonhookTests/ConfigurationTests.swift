import Foundation
import LuaRuntime
import Moonhook
import Testing
import WebhookVerification

@Suite("Configuration files")
struct ConfigurationTests {
    static func file(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appending(path: "moonhook-\(UUID().uuidString).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func everyKeyIsRead() throws {
        let path = try Self.file("""
            listen: 0.0.0.0:9090
            handlers: /srv/handlers
            store: sqlite:/var/lib/moonhook/db.sqlite
            max_body_bytes: 2048
            workers: 3
            max_concurrent_invocations: 10
            admin_token: ${ADMIN}
            log_level: debug
            limits:
              memory_mb: 64
              instructions: 1000
              timeout_ms: 1500
              pattern_steps: 99
              log_lines_per_second: 7
              log_line_bytes: 4096
              log_bytes_per_invocation: 32768
            """)
        let configuration = try ServerConfiguration.load(file: path, required: true, environment: ["ADMIN": "s3cret"])
        #expect(configuration.listen == "0.0.0.0:9090")
        #expect(configuration.handlersFolder == "/srv/handlers")
        #expect(configuration.store == "sqlite:/var/lib/moonhook/db.sqlite")
        #expect(configuration.maxBodyBytes == 2048)
        #expect(configuration.workers == 3)
        #expect(configuration.maxConcurrentInvocations == 10)
        #expect(configuration.adminToken == "s3cret")
        #expect(configuration.logLevel == "debug")
        #expect(configuration.limits.memoryBytes == 64 << 20)
        #expect(configuration.limits.instructions == 1000)
        #expect(configuration.limits.wallClock == .milliseconds(1500))
        #expect(configuration.limits.patternSteps == 99)
        #expect(configuration.limits.logLinesPerSecond == 7)
        #expect(configuration.limits.logLineBytes == 4096)
        #expect(configuration.limits.logBytesPerInvocation == 32768)
    }

    @Test func outboundPolicyIsRead() throws {
        let path = try Self.file("""
            http:
              allow: [Hooks.Internal.Example, 10.20.0.0/16, "::1"]
              max_calls: 5
              max_response_bytes: 4096
              max_redirects: 0
              timeout_ms: 250
            """)
        let outbound = try ServerConfiguration.load(file: path, required: true, environment: [:]).outbound
        #expect(outbound.allowedHosts == ["hooks.internal.example"])
        #expect(outbound.allowedRanges == [IPRange("10.20.0.0/16")!, IPRange("::1")!])
        #expect(outbound.maxCallsPerInvocation == 5)
        #expect(outbound.maxResponseBytes == 4096)
        #expect(outbound.maxRedirects == 0)
        #expect(outbound.defaultTimeout == .milliseconds(250))
        let bad = try Self.file("http:\n  allow: [10.0.0.0/99]\n")
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: bad, required: true, environment: [:]) }
    }

    @Test func environmentOverridesTheFile() throws {
        let path = try Self.file("listen: 127.0.0.1:1\nhandlers: a\nlog_level: info\n")
        let configuration = try ServerConfiguration.load(file: path, required: true, environment: [
            "MOONHOOK_LISTEN": ":7000", "MOONHOOK_HANDLERS": "b", "MOONHOOK_LOG_LEVEL": "warning", "MOONHOOK_WORKERS": "5",
        ])
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 7000)
        #expect(configuration.handlersFolder == "b")
        #expect(configuration.logLevel == "warning")
        #expect(configuration.workers == 5)
    }

    @Test func defaultsWithoutAFile() throws {
        let configuration = try ServerConfiguration.load(file: "/nonexistent/moonhook.yaml", required: false, environment: [:])
        #expect(configuration.listen == "127.0.0.1:8080")
        #expect(configuration.handlersFolder == "handlers")
        #expect(configuration.store == "sqlite:data/moonhook.sqlite")
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: "/nonexistent/moonhook.yaml", required: true, environment: [:]) }
    }

    @Test(arguments: [
        ("listen: nowhere\n", "", "listen must be HOST:PORT"),
        ("handlers: x\nworkers: many\n", ":2", "'workers' must be a whole number"),
        ("handlers: x\nlimits:\n  memory_mb: -1\n", "", "limits.memory_mb must be a positive whole number"),
        ("admin_token: ${MISSING_TOKEN}\n", ":1", "environment variable MISSING_TOKEN is not set"),
        ("listen: [1, 2\n", ":2", "invalid YAML"),
        ("log_level: loud\n", "", "log_level must be one of"),
        ("deliveries:\n  retention: forever\n", "", "'deliveries.retention' must be a duration"),
        ("deliveries:\n  lease: 0s\n", "", "deliveries.lease must be more than 0"),
        ("server:\n  header_timeout: soon\n", "", "'server.header_timeout' must be a duration"),
        ("server:\n  idle_timeout: 0\n", "", "server.idle_timeout must be more than 0"),
        ("server:\n  max_connections: 0\n", "", "server.max_connections must be a positive whole number"),
    ])
    func mistakesNameFileLineAndKey(_ text: String, _ line: String, _ message: String) throws {
        let path = try Self.file(text)
        do {
            _ = try ServerConfiguration.load(file: path, required: true, environment: [:])
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix(path + line + ": "), "\(error)")
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test func sourceDefaultsPerScheme() throws {
        let github = try SourceConfiguration.load(path: try Self.file("scheme: github\nsecret: s\n"), environment: [:])
        #expect(github.type == [.header("X-GitHub-Event")])
        #expect(github.id == [.header("X-GitHub-Delivery"), .bodyHash])
        let induced = try SourceConfiguration.load(path: try Self.file("scheme: token\ntoken: header:X-T\nsecrets: [a, b]\ntype: /data/eventType\nid: sha256\n"), environment: [:])
        #expect(induced.verifier.tokenLocation == .header("X-T"))
        #expect(induced.verifier.secrets == ["a", "b"])
        #expect(induced.type == [.pointer("/data/eventType")])
        #expect(induced.id == [.bodyHash])
        let stripe = try SourceConfiguration.load(path: try Self.file("scheme: stripe\nsecrets: [\"${STRIPE}\"]\ntolerance: 60\n"), environment: ["STRIPE": "whsec_x"])
        #expect(stripe.verifier.secrets == ["whsec_x"])
        #expect(stripe.verifier.toleranceSeconds == 60)
        #expect(stripe.id == [.pointer("/id"), .bodyHash])
        let slack = try SourceConfiguration.load(path: try Self.file("scheme: slack\nsecret: s\n"), environment: [:])
        #expect(slack.type == [.pointer("/type"), .form("command")] && slack.formJSON == "payload")
        #expect(github.formJSON == "payload" && stripe.formJSON == nil)
        let twilio = try SourceConfiguration.load(path: try Self.file("scheme: twilio\nsecret: s\npublic_url: https://h.example.com/hooks/twilio\n"), environment: [:])
        #expect(twilio.verifier.publicURL == "https://h.example.com/hooks/twilio")
        #expect(twilio.type == [.twilioStatus, .form("EventType")])
        #expect(twilio.id == [.header("I-Twilio-Idempotency-Token"), .bodyHash])
        let form = try SourceConfiguration.load(path: try Self.file("scheme: none\ntype: form:event\nid: form:ref\nform_json: data\n"), environment: [:])
        #expect(form.type == [.form("event")] && form.id == [.form("ref")] && form.formJSON == "data")
    }

    @Test(arguments: [
        ("secret: x\n", "missing 'scheme'"),
        ("scheme: carrier-pigeon\n", "unknown scheme 'carrier-pigeon'"),
        ("scheme: hmac\nsecret: x\nencoding: base32\n", "'encoding' must be hex or base64"),
        ("scheme: hmac\nsecret: x\ntype: eventType\n", "'type' must be a JSON pointer"),
        ("scheme: token\nsecret: x\ntoken: cookie\n", "'token' must be bearer, basic or header:NAME"),
        ("scheme: github\nsecret: \"\"\n", "a secret is empty"),
        ("scheme: none\nrespond: later\n", "'respond' must be async or sync"),
        ("scheme: none\nconcurrency: 0\n", "'concurrency' must be a whole number of at least 1"),
        ("scheme: none\nretry:\n  delay: soon\n", "'retry.delay' must be a duration"),
        ("scheme: none\nretry:\n  retries: -1\n", "'retry.retries' must be 0 or more"),
        ("scheme: twilio\nsecret: x\n", "scheme 'twilio' needs public_url"),
        ("scheme: twilio\nsecret: x\npublic_url: https://h.example.com/t?a=1\n", "public_url must not have a query string"),
        ("scheme: browser-use-v2\nsecret: x\nform_json: payload\n", "'form_json': scheme 'browser-use-v2' takes JSON bodies only"),
        ("scheme: none\ntype: \"form:\"\n", "'type': field name missing after 'form:'"),
    ])
    func sourceMistakes(_ text: String, _ message: String) throws {
        let path = try Self.file(text)
        #expect { try SourceConfiguration.load(path: path, environment: [:]) } throws: { error in
            "\(error)".contains(message) && "\(error)".hasPrefix(path + ":")
        }
    }

    @Test func deliverySettingsAreRead() throws {
        let path = try Self.file("deliveries:\n  retention: 14d\n  lease: 45s\n  poll_interval: 250ms\n  durable: false\n")
        let settings = try ServerConfiguration.load(file: path, required: true, environment: [:]).deliveries
        #expect(settings.retention == .seconds(14 * 86400))
        #expect(settings.lease == .seconds(45))
        #expect(settings.pollInterval == .milliseconds(250))
        #expect(settings.durable == false)
        let defaults = ServerConfiguration().deliveries
        #expect(defaults.retention == .seconds(7 * 86400) && defaults.lease == .seconds(30) && defaults.durable)
    }

    @Test func serverSettingsAreRead() throws {
        let path = try Self.file("server:\n  header_timeout: 5s\n  body_timeout: 1m\n  idle_timeout: 90\n  max_connections: 100\n")
        let settings = try ServerConfiguration.load(file: path, required: true, environment: [:]).server
        #expect(settings.headerTimeout == .seconds(5))
        #expect(settings.bodyTimeout == .seconds(60))
        #expect(settings.idleTimeout == .seconds(90))
        #expect(settings.maxConnections == 100)
        let defaults = ServerConfiguration().server
        #expect(defaults.headerTimeout == .seconds(10) && defaults.bodyTimeout == .seconds(30) && defaults.idleTimeout == .seconds(60))
        #expect(defaults.maxConnections == 4096)
    }

    @Test func sourceDeliveryKeysAreRead() throws {
        let source = try SourceConfiguration.load(
            path: try Self.file("scheme: none\nrespond: sync\nconcurrency: 4\nretry:\n  retries: 2\n  delay: 1m\n  max_delay: 2h\n"), environment: [:])
        #expect(source.respondsSynchronously)
        #expect(source.concurrency == 4)
        #expect(source.retry.retries == 2)
        #expect(source.retry.delay == .seconds(60))
        #expect(source.retry.maxDelay == .seconds(7200))
        let plain = try SourceConfiguration.load(path: try Self.file("scheme: none\n"), environment: [:])
        #expect(!plain.respondsSynchronously && plain.concurrency == nil && plain.retry == RetryPolicy())
    }

    /// Delays grow fourfold from `delay`, stop at `max_delay`, stay within ±20% of that, and end
    /// after `retries`.
    @Test func retryDelaysGrowThenStop() {
        let policy = RetryPolicy()
        let low = (1...7).map { policy.delay(afterFailure: $0, random: 0)! }
        let high = (1...7).map { policy.delay(afterFailure: $0, random: 1)! }
        let middle = (1...7).map { policy.delay(afterFailure: $0, random: 0.5)! }
        #expect(middle == [.seconds(30), .seconds(120), .seconds(480), .seconds(1920), .seconds(7680), .seconds(30720), .seconds(36000)])
        #expect(low.first == .seconds(24) && high.first == .seconds(36))
        #expect(low.last == .seconds(28800) && high.last == .seconds(43200))
        #expect(policy.delay(afterFailure: 8) == nil)
        var none = RetryPolicy()
        none.retries = 0
        #expect(none.delay(afterFailure: 1) == nil)
    }
}
