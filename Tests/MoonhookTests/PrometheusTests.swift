import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookTestSupport
import NIOCore
import Testing

/// The monitoring files under docs/monitoring, and a real Prometheus server scraping moonhook.
@Suite("Prometheus", .serialized, .timeLimit(.minutes(2)))
struct PrometheusTests {
    static let rules = ReferenceSigner.root.appending(path: "docs/monitoring/moonhook-rules.yml")
    static let dashboard = ReferenceSigner.root.appending(path: "docs/monitoring/moonhook-dashboard.json")

    /// A program of Debian's `prometheus` package (which `make test` installs).
    static func program(_ name: String) throws -> String {
        let path = "/usr/bin/\(name)"
        try #require(FileManager.default.isExecutableFile(atPath: path), "\(path) is missing: `make test-deps` installs Debian's prometheus package")
        return path
    }

    @Test func theAlertRulesPassPromtool() async throws {
        let result = try await MoonhookProcess.detached { [promtool = try Self.program("promtool")] in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: promtool)
            process.arguments = ["check", "rules", Self.rules.path]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }
        #expect(result.0 == 0, "\(result.1)")
        #expect(result.1.contains("SUCCESS"), "\(result.1)")
    }

    /// Every metric the rules and the dashboard name is one a server exports once it has seen
    /// each kind of traffic: a name that is not exported would make an alert that never fires.
    @Test func everyMetricTheRulesAndTheDashboardNameIsExported() async throws {
        var named: Set<String> = []
        for file in [Self.rules, Self.dashboard] {
            let text = try String(contentsOf: file, encoding: .utf8)
            let pattern = try Regex(#"moonhook_[a-z_]+"#)
            for match in text.matches(of: pattern) {
                var name = String(text[match.range])
                for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) { name = String(name.dropLast(suffix.count)) }
                named.insert(name)
            }
        }
        #expect(named.count >= 12, "\(named.sorted())")
        let expected = named

        let handlers = try ObservabilityTests.handlers()
        defer { handlers.remove() }
        try handlers.write("s/retry.lua", "return { retries = 1, retry_delay = 0.01, handle = function(e) error('no') end }\n")
        try handlers.write("s/call.lua", "return function(e) pcall(http.get, 'http://127.0.0.1:1/') end\n")
        var configuration = try await ObservabilityTests.configuration(handlers, .sqlite)
        configuration.outbound.allowedRanges = [IPRange("127.0.0.1")!]
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            for type in ["ok", "bad", "retry", "call"] {
                #expect(try await ObservabilityTests.post(client, "s", #"{"type":"\#(type)","id":"\#(type)"}"#).status == .accepted)
            }
            #expect(try await ObservabilityTests.post(client, "t", #"{"type":"ok","id":"1"}"#).status == .unauthorized)
            try handlers.write("s/later.lua", "return function(e) end\n")
            try await Task.sleep(for: .milliseconds(300))
            try handlers.write("s/broken.lua", "return function(e) end end\n")
            let samples = try await ObservabilityTests.scrapeUntil(client) { samples in
                expected.isSubset(of: samples.families) && samples.sum("moonhook_retries_total") >= 1
            }
            let missing = expected.subtracting(samples.families)
            #expect(missing.isEmpty, "named in docs/monitoring but not exported: \(missing.sorted())")
        }
    }

    /// A real Prometheus scrapes a server under load, once through `metrics.listen` and once
    /// through the main listener with the admin token: its queries give what was sent.
    @Test func aPrometheusServerScrapesWhatWasSent() async throws {
        let prometheus = try Self.program("prometheus")
        let handlers = try ObservabilityTests.handlers()
        defer { handlers.remove() }
        var configuration = try await ObservabilityTests.configuration(handlers, .sqlite)
        let metricsPort = try ObservabilityTests.freePort()
        configuration.metrics.listen = .init(host: "127.0.0.1", port: metricsPort)
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let folder = handlers.folder.appending(path: "prometheus")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try """
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: moonhook
                    static_configs:
                      - targets: ["127.0.0.1:\(metricsPort)"]
                  - job_name: moonhook-main
                    authorization:
                      credentials: admin-token
                    static_configs:
                      - targets: ["127.0.0.1:\(port)"]
                """.write(to: folder.appending(path: "prometheus.yml"), atomically: true, encoding: .utf8)
            let webPort = try ObservabilityTests.freePort()
            let server = Process()
            server.executableURL = URL(fileURLWithPath: prometheus)
            server.arguments = [
                "--config.file=\(folder.appending(path: "prometheus.yml").path)", "--storage.tsdb.path=\(folder.appending(path: "data").path)",
                "--web.listen-address=127.0.0.1:\(webPort)",
            ]
            let log = folder.appending(path: "prometheus.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let logHandle = try FileHandle(forWritingTo: log)
            server.standardOutput = logHandle
            server.standardError = logHandle
            try server.run()
            defer {
                server.terminate()
                server.waitUntilExit()
            }

            // Load: 400 valid deliveries from 8 senders at once, and 40 with a wrong token.
            let valid = 400
            let refused = 40
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in 0..<8 {
                    group.addTask {
                        for index in stride(from: sender, to: valid + refused, by: 8) {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/t")
                            request.method = .POST
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.headers.add(name: "X-Token", value: index < valid ? ObservabilityTests.token : "wrong")
                            request.body = .bytes(ByteBuffer(string: #"{"type":"ok","id":"load-\#(index)"}"#))
                            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                            _ = try await response.body.collect(upTo: 1 << 16)
                            #expect(response.status.code == (index < valid ? 202 : 401))
                        }
                    }
                }
                try await group.waitForAll()
            }

            let queries = [
                #"sum(moonhook_requests_total{job="moonhook",source="t",status="202"})"#: Double(valid),
                #"sum(moonhook_refusals_total{job="moonhook",source="t",reason="signature"})"#: Double(refused),
                #"sum(moonhook_invocations_total{job="moonhook",source="t",outcome="ok"})"#: Double(valid),
                #"sum(moonhook_requests_total{job="moonhook-main",source="t",status="202"})"#: Double(valid),
                #"max(moonhook_pairs{job="moonhook",source="t",state="pending"})"#: 0,
                #"up{job="moonhook-main"}"#: 1,
            ]
            var answers: [String: Double] = [:]
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            while clock.now < deadline {
                for query in queries.keys { answers[query] = try await Self.query(query, port: webPort) }
                if answers == queries { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(answers == queries, "Prometheus answered \(answers); its log ends: \(output.suffix(1500))")
        }
    }

    /// One instant query's single value (nil: no series, or Prometheus not up yet).
    static func query(_ expression: String, port: Int) async throws -> Double? {
        var components = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: expression)]
        guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: components.string!), timeout: .seconds(5)),
            response.status == .ok
        else { return nil }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard let answer = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let data = answer["data"] as? [String: Any], let result = data["result"] as? [[String: Any]], let first = result.first,
            let value = first["value"] as? [Any], let text = value.last as? String
        else { return nil }
        return Double(text)
    }
}
