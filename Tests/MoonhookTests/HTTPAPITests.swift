import Foundation
import LuaRuntime
import Moonhook
import Testing

@Suite("http in handlers")
struct HTTPAPITests {
    /// Loopback allowed, as a team would allow an internal service in moonhook.yaml.
    static func allowingLoopback(maxCalls: Int = 20) -> OutboundPolicy {
        var policy = OutboundPolicy()
        policy.allowedRanges = [IPRange("127.0.0.0/8")!]
        policy.maxCallsPerInvocation = maxCalls
        return policy
    }

    static func harness(_ policy: OutboundPolicy) throws -> HandlerHarness {
        try HandlerHarness(services: { TestServices.make($0, outbound: policy) })
    }

    @Test func getAndPostWithJSON() async throws {
        let server = OutboundServer()
        let harness = try Self.harness(Self.allowingLoopback())
        defer { harness.shutdown() }
        let values = try await server.run { port in
            try await harness.run("""
                local r = http.get("http://127.0.0.1:\(port)/json")
                local p = http.post("http://127.0.0.1:\(port)/echo", {json = {text = "hi", n = 1}, headers = {["X-Trace"] = "abc"}})
                local q = http.request{method = "POST", url = "http://127.0.0.1:\(port)/echo", body = "raw", headers = {["Content-Type"] = "text/plain"}}
                return r.status, r:json().n, r.headers["x-test"], p.status, p.body, p.headers["content-type"], q.body, q.headers["content-type"]
                """).result.get()
        }
        #expect(values == [.integer(200), .integer(42), .string("yes"), .integer(201), .string(#"{"n":1,"text":"hi"}"#), .string("application/json"), .string("raw"), .string("text/plain")])
        // Responses share one metatable: no handler may reach or change it.
        let guarded = try await server.run { port in
            try await harness.run("""
                local r = http.get("http://127.0.0.1:\(port)/json")
                local ok, err = pcall(setmetatable, r, {})
                return getmetatable(r), ok, err
                """).result.get()
        }
        #expect(guarded == [.boolean(false), .boolean(false), .string("cannot change a protected metatable")], "\(guarded.map { $0.text ?? "\($0)" })")
        let echoed = try #require(server.requests.first)
        #expect(echoed.headers["x-trace"] == "abc")
        #expect(echoed.method == "POST")
    }

    @Test(arguments: [
        ("http://127.0.0.1:9/", "127.0.0.1 is a loopback address"),
        ("http://localhost:9/", "is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local (cloud metadata) address"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://192.168.0.1/", "192.168.0.1 is a private address"),
        ("http://[::1]:9/", "is a loopback address"),
        ("http://[::ffff:127.0.0.1]:9/", "is a loopback address"),
        ("http://0.0.0.0:9/", "0.0.0.0 is a reserved address"),
    ])
    func privateAddressesAreBlockedByDefault(_ url: String, _ reason: String) async throws {
        let harness = try Self.harness(OutboundPolicy())
        defer { harness.shutdown() }
        let outcome = try await harness.run("http.get('\(url)')")
        let message = try #require(outcome.error?.message)
        #expect(message.hasPrefix("src/h.lua:2: http.request: blocked by policy: "), "\(message)")
        #expect(message.contains(reason), "\(message)")
        #expect(message.hasSuffix("(allow it in moonhook.yaml under http.allow)"))
    }

    @Test func redirectsAreFollowedAndEachHopChecked() async throws {
        let server = OutboundServer()
        var byName = OutboundPolicy()
        byName.allowedHosts = ["localhost"]
        let named = try Self.harness(byName)
        let loopback = try Self.harness(Self.allowingLoopback())
        defer {
            named.shutdown()
            loopback.shutdown()
        }
        try await server.run { port in
            let followed = try await loopback.run("local r = http.get('http://127.0.0.1:\(port)/redirect') return r.status, r:json().ok").result.get()
            #expect(followed == [.integer(200), .boolean(true)])
            let looping = try await loopback.run("http.get('http://127.0.0.1:\(port)/loop')")
            #expect(looping.error?.message == "src/h.lua:2: http.request: too many redirects (more than 3)")
            // Allowed by name, redirected to an address that is not: refused at the second hop.
            let hop = try await named.run("http.get('http://localhost:\(port)/elsewhere?to=http://127.0.0.2:\(port)/json')")
            #expect(hop.error?.message.contains("blocked by policy: 127.0.0.2 is a loopback address") == true, "\(String(describing: hop.error))")
        }
    }

    @Test func timeoutsSizeCapsRefusalsAndCallCounts() async throws {
        let server = OutboundServer()
        let harness = try Self.harness(Self.allowingLoopback(maxCalls: 3))
        defer { harness.shutdown() }
        let closedPort = try Self.closedPort()
        try await server.run { port in
            let slow = try await harness.run("http.get('http://127.0.0.1:\(port)/slow', {timeout = 0.3})")
            #expect(slow.error?.message == "src/h.lua:2: http.request: timed out after 300 ms")
            let big = try await harness.run("http.get('http://127.0.0.1:\(port)/big')")
            #expect(big.error?.message == "src/h.lua:2: http.request: response larger than 1048576 bytes")
            let refused = try await harness.run("http.get('http://127.0.0.1:\(closedPort)/')")
            #expect(refused.error?.message == "src/h.lua:2: http.request: connection refused")
            let many = try await harness.run("for i = 1, 4 do http.get('http://127.0.0.1:\(port)/json') end")
            #expect(many.error?.message == "src/h.lua:2: http.request: more than 3 calls in one invocation")
            let caught = try await harness.run("local ok, err = pcall(http.get, 'ftp://127.0.0.1/') return ok, err")
            #expect(try caught.result.get() == [.boolean(false), .string("src/h.lua:2: http.request: invalid URL 'ftp://127.0.0.1/' (http or https only)")])
        }
    }

    @Test func theInvocationDeadlineBoundsACall() async throws {
        let server = OutboundServer()
        var limits = LuaLimits()
        limits.wallClock = .milliseconds(400)
        let harness = try HandlerHarness(services: { TestServices.make($0, limits: limits, outbound: Self.allowingLoopback()) })
        defer { harness.shutdown() }
        try await server.run { port in
            let outcome = try await harness.run("http.get('http://127.0.0.1:\(port)/slow', {timeout = 30})")
            #expect(outcome.error?.reason == .deadline)
        }
    }

    /// A port on which nothing listens: bound once to learn a free number, then closed.
    static func closedPort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
