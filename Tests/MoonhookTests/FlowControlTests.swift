import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MoonhookTestSupport
import MoonhookStore
import NIOCore
import Testing

@testable import Moonhook

/// Inbound allow-lists, trusted proxies and per-source rate limits.
@Suite(.timeLimit(.minutes(2))) struct FlowControlTests {
    static func client(_ peer: String, _ headers: [(String, String)] = [], trusted: [String] = ["10.0.0.0/8", "127.0.0.1"]) throws -> String? {
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        let address = try SocketAddress(ipAddress: peer, port: 4711)
        return ClientAddress.resolve(peer: address, headers: fields, trusted: trusted.map { IPRange($0)! })?.text
    }

    @Test func theClientIsTheFirstUntrustedAddressFromTheRight() throws {
        // No proxy in front: the headers are the client's own words and are not read.
        #expect(try Self.client("198.51.100.20", [("X-Forwarded-For", "10.1.2.3")]) == "198.51.100.20")
        // Through a trusted proxy: the address it received from.
        #expect(try Self.client("10.0.0.5", [("X-Forwarded-For", "203.0.113.9")]) == "203.0.113.9")
        // A spoofed leftmost entry is passed over: the proxy appended the real one.
        #expect(try Self.client("10.0.0.5", [("X-Forwarded-For", "10.9.9.9, 203.0.113.9")]) == "203.0.113.9")
        // Two trusted proxies, and one header per hop.
        #expect(try Self.client("10.0.0.5", [("X-Forwarded-For", "1.1.1.1, 203.0.113.9"), ("X-Forwarded-For", "10.0.0.7")]) == "203.0.113.9")
        // Every hop trusted: the leftmost is the last one a trusted proxy vouched for.
        #expect(try Self.client("10.0.0.5", [("X-Forwarded-For", "10.0.0.8, 10.0.0.7")]) == "10.0.0.8")
        // An entry that is not an address is where the walk ends, and names no address.
        #expect(try Self.client("10.0.0.5", [("X-Forwarded-For", "unknown")]) == "unknown")
        // Forwarded (RFC 7239), with ports and IPv6 in brackets; X-Forwarded-For wins when both come.
        #expect(try Self.client("10.0.0.5", [("Forwarded", #"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#)]) == "2001:db8:cafe::17")
        #expect(try Self.client("10.0.0.5", [("Forwarded", "for=192.0.2.60"), ("X-Forwarded-For", "192.0.2.61:5555")]) == "192.0.2.61")
        // The peer's bytes are read from its sockaddr: the same as its address parsed.
        for text in ["198.51.100.20", "::1", "2001:db8:cafe::17", "::ffff:10.0.0.5"] {
            #expect(ClientAddress.bytes(of: try SocketAddress(ipAddress: text, port: 1)) == IPRange.parse(text), "\(text)")
        }
        // An IPv4-mapped IPv6 peer is judged as IPv4.
        let mapped = try Self.client("::ffff:10.0.0.5", [("X-Forwarded-For", "203.0.113.9")])
        #expect(mapped == "203.0.113.9", "\(String(describing: mapped))")
        #expect(try Self.client("10.0.0.5", [("X-Forwarded-For", "203.0.113.9")], trusted: []) == "10.0.0.5")
    }

    @Test func theRateGrammar() throws {
        #expect(Rate("100/s")?.perSecond == 100)
        #expect(Rate("6000/m")?.perSecond == 100)
        #expect(Rate(" 36 / h ")?.perSecond == 0.01)
        for bad in ["0/s", "-1/s", "10/d", "10", "/s", "1.5/s"] { #expect(Rate(bad) == nil, "\(bad)") }
        let limiter = SourceRateLimiter()
        let limit = SourceConfiguration.RateLimit(rate: Rate("2/s")!, burst: 2)
        let start = ContinuousClock.now
        #expect(limiter.admit(source: "s", limit: limit, now: start) == nil)
        #expect(limiter.admit(source: "s", limit: limit, now: start) == nil)
        #expect(limiter.admit(source: "s", limit: limit, now: start) == .milliseconds(500), "one token back every half second")
        #expect(limiter.admit(source: "s", limit: limit, now: start + .milliseconds(500)) == nil)
        #expect(limiter.admit(source: "other", limit: limit, now: start) == nil, "each source has its own bucket")
    }

    static func post(_ client: any TestClientProtocol, _ source: String, _ body: String, _ headers: [(String, String)] = []) async throws -> TestResponse {
        var fields: HTTPFields = [.contentType: "application/json"]
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return try await client.execute(uri: "/hooks/\(source)", method: .post, headers: fields, body: ByteBuffer(string: body))
    }

    @Test func allowFromRefusesOtherAddressesBeforeVerification() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("inside/source.yaml", "scheme: token\ntoken: header:X-Token\nsecrets: [tok]\nallow_from: [10.0.0.0/8, 192.30.252.0/22]\n")
        try handlers.write("inside/t.lua", "return function() end")
        try handlers.write("local/source.yaml", "scheme: none\nallow_from: [127.0.0.1]\n")
        try handlers.write("local/t.lua", "return function() end")
        var configuration = try await DeliveryTests.configuration(handlers)
        // The test client connects from 127.0.0.1: as a proxy in front, it is trusted.
        configuration.trustedProxies = [IPRange("127.0.0.1")!]
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let body = #"{"type":"t"}"#
            // The connection's own address, and a forged token: refused for the address, before the token is read.
            let direct = try await Self.post(client, "inside", body, [("X-Token", "wrong")])
            #expect(direct.status == .forbidden)
            #expect(String(buffer: direct.body) == "address 127.0.0.1 is not in the source's allow_from\n")
            // Forwarded by the trusted proxy from an allowed address: on to verification.
            #expect(try await Self.post(client, "inside", body, [("X-Token", "wrong"), ("X-Forwarded-For", "192.30.252.7")]).status == .unauthorized)
            #expect(try await Self.post(client, "inside", body, [("X-Token", "tok"), ("X-Forwarded-For", "10.1.2.3")]).status == .accepted)
            // A client that writes an allowed address itself, in front of the proxy's entry, is not taken at its word.
            let spoofed = try await Self.post(client, "inside", body, [("X-Token", "tok"), ("X-Forwarded-For", "10.1.2.3, 8.8.8.8")])
            #expect(spoofed.status == .forbidden)
            #expect(String(buffer: spoofed.body) == "address 8.8.8.8 is not in the source's allow_from\n")
            #expect(try await Self.post(client, "local", body).status == .accepted, "127.0.0.1 itself, with no header")

            let kept = try await DeliveryTests.admin(client, "/admin/refusals?source=inside")
            let list = try #require(kept["refusals"] as? [[String: Any]])
            #expect(list.map { $0["reason"] as? String } == ["address", "signature", "address"])
            #expect(list.map { $0["remote_address"] as? String } == ["8.8.8.8", "192.30.252.7", "127.0.0.1"], "the client, not the proxy")
        }
    }

    @Test func aRateLimitAnswers429WithRetryAfterAndCountsOnlyVerifiedRequests() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("fast/source.yaml", "scheme: token\ntoken: header:X-Token\nsecrets: [tok]\nrate_limit: { rate: 6/m, burst: 2 }\n")
        try handlers.write("fast/t.lua", "return function() end")
        try handlers.write("slow/source.yaml", "scheme: none\nrate_limit: { rate: 1/m }\n")
        try handlers.write("slow/t.lua", "return function() end")
        let app = try await buildApplication(configuration: try await DeliveryTests.configuration(handlers), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            // Refused requests take no token.
            for _ in 0..<5 { #expect(try await Self.post(client, "fast", #"{"type":"t"}"#, [("X-Token", "wrong")]).status == .unauthorized) }
            #expect(try await Self.post(client, "fast", #"{"type":"t","n":1}"#, [("X-Token", "tok")]).status == .accepted)
            #expect(try await Self.post(client, "fast", #"{"type":"t","n":2}"#, [("X-Token", "tok")]).status == .accepted)
            let limited = try await Self.post(client, "fast", #"{"type":"t","n":3}"#, [("X-Token", "tok")])
            #expect(limited.status == .tooManyRequests)
            // A token comes back every 10 s (refills are timed exactly in theRateGrammar).
            let wait = try #require(limited.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...10).contains(wait), "\(wait)")
            #expect(String(buffer: limited.body) == "past the source's rate limit of 6/m (burst 2); retry in \(wait) s\n")

            #expect(try await Self.post(client, "slow", #"{"type":"t","n":1}"#).status == .accepted)
            let slow = try await Self.post(client, "slow", #"{"type":"t","n":2}"#)
            #expect(slow.status == .tooManyRequests)
            let retryAfter = try #require(slow.headers[.retryAfter].flatMap { Int($0) })
            #expect((58...60).contains(retryAfter), "one request a minute: the next in about 60 s, got \(retryAfter)")

            let kept = try await DeliveryTests.admin(client, "/admin/refusals?source=fast")
            let reasons = (kept["refusals"] as? [[String: Any]])?.compactMap { $0["reason"] as? String } ?? []
            #expect(reasons.filter { $0 == "rate" }.count == 1)
            let samples = try await MetricsSamples.scrape(client)
            #expect(samples.sum("moonhook_refusals_total", ["source": "fast", "reason": "rate"]) == 1)
        }
    }

    /// A server with two workers and long leases (counts are exact only if nothing runs twice),
    /// and where its store is.
    static func twoWorkers(_ handlers: TestHandlers, _ engine: StoreEngine) async throws -> (some ApplicationProtocol, String) {
        var configuration = try await DeliveryTests.configuration(handlers, engine)
        configuration.workers = 2
        configuration.deliveries.lease = .seconds(60)
        return (try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger()), configuration.store)
    }

    /// Interleaved events of four keys, some failing once, through two workers: each key's events
    /// run one at a time and in the order they were stored.
    @Test(arguments: StoreEngine.all) func serialKeysRunInOrderAcrossWorkers(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write(
            "s/step.lua",
            """
            return {
              serial = "/key", retries = 3, retry_delay = 0.05,
              handle = function(e)
                if e.body.fail and e.attempt == 1 then error("fails once") end
                local key = "seen:" .. e.body.key
                local seen = kv.get(key) or {}
                time.sleep(e.body.pause)   -- a read, a wait, a write: any overlap would lose or reorder
                seen[#seen + 1] = e.body.n
                kv.set(key, seen)
              end,
            }
            """)
        let (app, location) = try await Self.twoWorkers(handlers, engine)
        try await app.test(.live) { client in
            for n in 1...10 {
                for key in ["a", "b", "c", "d"] {
                    let fail = (n == 3 && key == "a") || (n == 7 && key == "c")
                    let body = #"{"type":"step","id":"\#(key)-\#(n)","key":"\#(key)","n":\#(n),"pause":\#((n * 7 + key.count * 13) % 20),"fail":\#(fail)}"#
                    #expect(try await Self.post(client, "s", body).status == .accepted)
                }
            }
            let store = try await StoreLocation(location).open(logger: LogRecords().logger())
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, try await store.pairCounts().byStatus[.done] != 40 { try await Task.sleep(for: .milliseconds(100)) }
            #expect(try await store.pairCounts().byStatus == [.done: 40])
            for key in ["a", "b", "c", "d"] {
                let seen = try await store.get("s", "seen:\(key)").map { String(decoding: $0, as: UTF8.self) }
                #expect(seen == "[1,2,3,4,5,6,7,8,9,10]", "key \(key) ran out of order or overlapped: \(seen ?? "nothing")")
            }
            // The admin API's replay takes the order to keep; a wrong one is refused with its reason.
            let seq = try #require(try await store.deliveries(DeliveryFilter(id: "a-3")).deliveries.first?.seq)
            let bogus = try await client.execute(uri: "/admin/deliveries/\(seq)/replay?order=later", method: .post, headers: [.authorization: "Bearer admin-token"])
            #expect(bogus.status == .badRequest)
            #expect(String(buffer: bogus.body) == "order must be keep or ignore, got 'later'\n")
            let ignored = try await client.execute(uri: "/admin/deliveries/\(seq)/replay?order=ignore", method: .post, headers: [.authorization: "Bearer admin-token"])
            #expect(ignored.status == .ok)
            let shown = try await DeliveryTests.admin(client, "/admin/deliveries/\(seq)")
            #expect((shown["handlers"] as? [[String: Any]])?.first?["serial_key"] as? String == "a")
            await store.close()
        }
    }

    /// `max_rate = "20/s"`: a backlog of 30 starts at no more than 20 a second, spaced out, through
    /// two workers; nothing is refused.
    @Test(arguments: StoreEngine.all) func aMaxRateSpacesTheStarts(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/call.lua", "return { max_rate = '20/s', handle = function(e) kv.set('start:' .. e.body.id, time.now()) end }")
        let (app, location) = try await Self.twoWorkers(handlers, engine)
        try await app.test(.live) { client in
            for index in 0..<30 { #expect(try await Self.post(client, "s", #"{"type":"call","id":"c-\#(index)"}"#).status == .accepted) }
            let store = try await StoreLocation(location).open(logger: LogRecords().logger())
            var starts: [Double] = []
            for _ in 0..<100 {
                starts = try await store.list("s", prefix: "start:", limit: 100, after: nil).compactMap { Double(String(decoding: $0.value, as: UTF8.self)) }
                if starts.count == 30 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(starts.count == 30)
            starts.sort()
            // Measured where the handler starts, a little after its claim: single gaps jitter, the rate over 29 does not.
            let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
            let rate = Double(starts.count - 1) / ((starts.last ?? 0) - (starts.first ?? 0))
            #expect(rate <= 22, "30 starts at \(rate)/s, more than 10% over 20/s")
            #expect((gaps.min() ?? 0) >= 0.02, "two starts \(gaps.min() ?? 0) s apart: a burst, not spaced")
            await store.close()
        }
    }

    /// A `respond: sync` delivery of a serial key waits for the earlier ones of its key, the wait
    /// counting against the handler's timeout, then runs; past it, 503 with `Retry-After`, naming
    /// the delivery it waited for.
    @Test(arguments: StoreEngine.all) func aSynchronousSerialEventWaitsForItsKeyWithinItsTimeout(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\nrespond: sync\n")
        // step.lua has time to wait; quick.lua gives up after 2 s.
        for (name, timeout) in [("step", 30), ("quick", 2)] {
            try handlers.write(
                "s/\(name).lua",
                """
                return {
                  serial = "/key", timeout = \(timeout),
                  handle = function(e)
                    time.sleep(e.body.ms)
                    local order = kv.get("order") or {}
                    order[#order + 1] = e.body.n
                    kv.set("order", order)
                    return { n = e.body.n, order = order }
                  end,
                }
                """)
        }
        let configuration = try await DeliveryTests.configuration(handlers, engine)
        let location = configuration.store
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            @Sendable func send(_ n: Int, ms: Int, after delay: Int, type: String = "step") async throws -> (Int, String, String?) {
                try await Task.sleep(for: .milliseconds(delay))
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/s")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: #"{"type":"\#(type)","id":"n-\#(n)","key":"k","n":\#(n),"ms":\#(ms)}"#))
                // Longer than step.lua's 30 s timeout: the server answers by then, even on a loaded
                // machine, so a slow answer fails the expectations below rather than the client.
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(45))
                return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 16)), response.headers.first(name: "retry-after"))
            }
            // 1 runs 300 ms; 2 comes 50 ms later and waits for it, within its own 30 s timeout.
            async let first = send(1, ms: 300, after: 0)
            async let second = send(2, ms: 10, after: 50)
            let (one, two) = try await (first, second)
            #expect(one.0 == 200 && two.0 == 200, "\(one) \(two)")
            // Whichever was stored first ran first; the other saw its write (run alongside, both would see none).
            let answers = Set([one.1, two.1])
            #expect(answers == [#"{"n":1,"order":[1]}"#, #"{"n":2,"order":[1,2]}"#] || answers == [#"{"n":2,"order":[2]}"#, #"{"n":1,"order":[2,1]}"#], "\(answers)")
            // Another process runs the key's head (stored running, leased for a minute): the wait
            // outlasts the timeout.
            let store = try await StoreLocation(location).open(logger: LogRecords().logger())
            let elsewhere = InboxDelivery(
                source: "s", id: "elsewhere", type: "quick", receivedAt: Date(), headers: [:], body: [], handlers: ["s/quick.lua"],
                orderingKeys: ["s/quick.lua": "block:k"])
            guard case .accepted(let seq) = try await store.append(elsewhere, retention: .seconds(3600), claimed: true, lease: .seconds(60)) else {
                Issue.record("not stored")
                return
            }
            await store.close()
            let three = try await send(3, ms: 10, after: 0, type: "quick")
            #expect(three.0 == 503, "\(three)")
            #expect(three.2 == "2")
            #expect(three.1 == "handler s/quick.lua is busy: delivery \(seq) of the same serial key did not finish within its 2000 ms timeout\n")
        }
    }

    /// A `respond: sync` handler with a `max_rate` starts when its rate lets it, within its timeout;
    /// past it, 503 with `Retry-After`.
    @Test(arguments: StoreEngine.all) func aSynchronousRatedHandlerWaitsForItsStartWithinItsTimeout(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\nrespond: sync\n")
        try handlers.write("s/often.lua", "return { max_rate = '4/s', timeout = 30, handle = function(e) return { at = time.now() } end }")
        try handlers.write("s/rarely.lua", "return { max_rate = '1/h', timeout = 1, handle = function(e) return { ok = true } end }")
        let app = try await buildApplication(configuration: try await DeliveryTests.configuration(handlers, engine), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            var times: [Double] = []
            for index in 0..<3 {
                let response = try await Self.post(client, "s", #"{"type":"often","id":"o-\#(index)"}"#)
                #expect(response.status == .ok)
                let answer = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                times.append(try #require(answer?["at"] as? Double))
            }
            let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
            #expect(gaps.allSatisfy { $0 >= 0.1 }, "starts \(gaps) s apart under a 4/s rate (0.25 s, less how late the first looked at the clock)")
            #expect(try await Self.post(client, "s", #"{"type":"rarely","id":"r-1"}"#).status == .ok)
            let refused = try await Self.post(client, "s", #"{"type":"rarely","id":"r-2"}"#)
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] == "1")
            #expect(String(buffer: refused.body) == "handler s/rarely.lua is busy: its max_rate lets it start no sooner than past its 1000 ms timeout\n")
        }
    }

    @Test func serialAndRateOptionsAreChecked() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("a/source.yaml", "scheme: none\n")
        try handlers.write("a/hash.lua", "return { serial = 'sha256', handle = function() end }")
        try handlers.write("a/mode.lua", "return { serial = '/k', serial_failure = 'later', handle = function() end }")
        try handlers.write("a/alone.lua", "return { serial_failure = 'skip', handle = function() end }")
        try handlers.write("a/number.lua", "return { serial = 5, handle = function() end }")
        try handlers.write("b/source.yaml", "scheme: none\nrespond: sync\n")
        try handlers.write("a/rate.lua", "return { max_rate = '10 per second', handle = function() end }")
        try handlers.write("c/source.yaml", "scheme: none\n")
        try handlers.write("c/ok.lua", "return { serial = 'form:Sid', serial_failure = 'skip', max_rate = '600/m', handle = function() end }")
        let result = try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path]) }
        #expect(result.status == 1)
        for line in [
            "a/alone.lua: 'serial_failure' goes with 'serial'",
            "a/hash.lua: 'serial' must be a JSON pointer (/payload/taskId), header:NAME or form:NAME",
            "a/mode.lua: 'serial_failure' must be \"block\" or \"skip\"",
            "a/number.lua: 'serial' must name where the key is: a JSON pointer (/payload/taskId), header:NAME or form:NAME",
            "a/rate.lua: 'max_rate' must be a rate such as \"10/s\", \"600/m\" or \"20/h\", got '10 per second'",
            "ok: c (none, 1 handlers)",
        ] {
            #expect(result.out.contains(line + "\n"), "\(line) in \(result.out)")
        }
    }

    @Test func theSettingsAreChecked() throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        for (yaml, message) in [
            ("scheme: none\nallow_from: [10.0.0.0/33]\n", "allow_from: '10.0.0.0/33' is not an address or a range such as 192.30.252.0/22"),
            ("scheme: none\nrate_limit: { rate: 10/d }\n", "'rate_limit.rate' must be a rate such as 100/s, 6000/m or 20/h, got '10/d'"),
            ("scheme: none\nrate_limit: { burst: 3 }\n", "rate_limit needs a rate, such as rate: 100/s"),
            ("scheme: none\nrate_limit: { rate: 1/s, burst: 0 }\n", "'rate_limit.burst' must be 1 or more"),
        ] {
            try handlers.write("s/source.yaml", yaml)
            #expect(throws: ConfigurationError.self) { try SourceConfiguration.load(path: handlers.folder.appending(path: "s/source.yaml").path, environment: [:]) }
            do {
                _ = try SourceConfiguration.load(path: handlers.folder.appending(path: "s/source.yaml").path, environment: [:])
            } catch {
                #expect(error.message == message)
            }
        }
        try handlers.write("moonhook.yaml", "trusted_proxies: [10.0.0.0/8, nonsense]\n")
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: handlers.folder.appending(path: "moonhook.yaml").path, required: true, environment: [:]) }
    }
}
