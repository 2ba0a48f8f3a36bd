import AsyncHTTPClient
import Foundation
import LuaRuntime
import MoonhookStore
import NIOCore
import NIOHTTP1

/// `http.request{method, url, headers, body, json, timeout}`, `http.get(url, options)` and
/// `http.post(url, options)` for handlers, on one shared AsyncHTTPClient. A call suspends the
/// handler's coroutine; no thread blocks. The response is `{status, headers, body}` with a
/// `json()` method. Every address is checked against the `OutboundPolicy` (SSRF guard), at every
/// redirect too; calls per invocation, response size, redirects and time are capped.
public enum HTTPAPI {
    /// Lua wrappers: options handling that is easier in Lua, and the response's `json()` method.
    static let setup = #"""
    local lib, host = ...
    local raw, encode, decode = lib._request, host.json.encode, host.json.decode
    -- Shared by every handler's responses: protected, so that no handler can change it for another.
    local response = { __index = { json = function(self) return decode(self.body) end }, __metatable = false }
    local function request(options)
      if type(options) ~= "table" then error("http.request: expected a table of options", 2) end
      local o = {}
      for k, v in next, options do o[k] = v end
      if o.json ~= nil then
        o.body = encode(o.json)
        o.json = nil
        local headers = {}
        for k, v in next, o.headers or {} do headers[k] = v end
        local typed = false
        for k in next, headers do if type(k) == "string" and k:lower() == "content-type" then typed = true end end
        if not typed then headers["Content-Type"] = "application/json" end
        o.headers = headers
      end
      return setmetatable(raw(o), response)
    end
    local function with_method(method)
      return function(url, options)
        local o = {}
        for k, v in next, options or {} do o[k] = v end
        o.url, o.method = url, method
        return request(o)
      end
    end
    lib.request, lib.get, lib.post, lib._request = request, with_method("GET"), with_method("POST"), nil
    """#

    public static func library(client: HTTPClient, policy: OutboundPolicy, metrics: ServerMetrics? = nil) -> LuaLibrary {
        library(policy: policy, metrics: metrics) { request, deadline in
            try await request.perform(client: client, policy: policy, invocationDeadline: deadline)
        }
    }

    /// Sends a checked request before the invocation's deadline and gives the response table.
    typealias Transport = @Sendable (OutboundRequest, ContinuousClock.Instant) async throws -> LuaValue

    /// The library on any transport: the network, or `moonhook test`'s canned responses.
    static func library(policy: OutboundPolicy, metrics: ServerMetrics?, transport: @escaping Transport) -> LuaLibrary {
        var http = LuaLibrary(name: "http")
        http.setup = setup
        http.declare("request", "fun(options: {method?: string, url: string, headers?: table<string, string>, body?: string, json?: any, timeout?: number}): {status: integer, headers: table<string, string>, body: string, json: fun(self): any}", "Sends a request and gives the response (any status); json = value sends it as JSON")
        http.declare("get", "fun(url: string, options?: {headers?: table<string, string>, body?: string, json?: any, timeout?: number}): {status: integer, headers: table<string, string>, body: string, json: fun(self): any}", "http.request with method GET")
        http.declare("post", "fun(url: string, options?: {headers?: table<string, string>, body?: string, json?: any, timeout?: number}): {status: integer, headers: table<string, string>, body: string, json: fun(self): any}", "http.request with method POST")
        http.function("_request") { call in
            guard case .table(_, let options) = try call.value(1) else { throw LuaHostError("http.request: expected a table of options") }
            let request = try OutboundRequest(options, policy: policy)
            if let context = call.handlerContext {
                guard context.countOutboundCall(limit: policy.maxCallsPerInvocation) else {
                    throw LuaHostError("http.request: more than \(policy.maxCallsPerInvocation) calls in one invocation")
                }
            }
            return .suspend { deadline in
                let clock = ContinuousClock()
                let start = clock.now
                do {
                    let response = try await transport(request, deadline)
                    if case .table(_, let fields) = response, case .integer(let status)? = fields["status"] {
                        metrics?.outbound(status: Int(status), duration: clock.now - start)
                    }
                    return [response]
                } catch {
                    metrics?.outbound(status: nil, duration: clock.now - start)
                    throw error
                }
            }
        }
        return http
    }
}

/// One call's options, checked before any I/O.
struct OutboundRequest: Sendable {
    var method: HTTPMethod
    var url: String
    var headers: [(String, String)]
    var body: [UInt8]?
    var timeout: Duration

    init(_ options: [String: LuaValue], policy: OutboundPolicy) throws {
        guard let url = options["url"]?.text else { throw LuaHostError("http.request: 'url' must be a string") }
        self.url = url
        let method = options["method"]?.text?.uppercased() ?? "GET"
        guard method.allSatisfy({ $0.isLetter }), !method.isEmpty else { throw LuaHostError("http.request: invalid method '\(method)'") }
        self.method = HTTPMethod(rawValue: method)
        headers = []
        switch options["headers"] {
        case nil: break
        case .table(_, let fields)?:
            for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                guard let text = value.text ?? LogAPI.renderScalar(value) else { throw LuaHostError("http.request: header '\(name)' must be a string") }
                guard !name.contains(where: { $0 == "\r" || $0 == "\n" }), !text.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                    throw LuaHostError("http.request: header '\(name)' contains a line break")
                }
                headers.append((name, text))
            }
        default: throw LuaHostError("http.request: 'headers' must be a table")
        }
        switch options["body"] {
        case nil: body = nil
        case .string(let bytes)?: body = bytes
        default: throw LuaHostError("http.request: 'body' must be a string (or use 'json')")
        }
        if let value = options["timeout"] {
            guard let seconds = value.positiveSeconds(atMost: LuaHandlerOptions.maxTimeoutSeconds) else {
                throw LuaHostError("http.request: 'timeout' must be a positive number of seconds, at most \(LuaHandlerOptions.maxTimeoutSeconds)")
            }
            timeout = seconds
        } else {
            timeout = policy.defaultTimeout
        }
    }

    /// Sends the request, following redirects by hand so that each hop passes the policy.
    func perform(client: HTTPClient, policy: OutboundPolicy, invocationDeadline: ContinuousClock.Instant) async throws -> LuaValue {
        let deadline = min(ContinuousClock.now.advanced(by: timeout), invocationDeadline)
        var method = self.method
        var body = self.body
        var current = url
        for _ in 0...policy.maxRedirects {
            guard let components = URLComponents(string: current), let scheme = components.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
            else {
                throw LuaHostError("http.request: invalid URL '\(current)' (http or https only)")
            }
            let bareHost = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            let addresses: [[UInt8]]
            do {
                addresses = try await HostResolver.resolve(bareHost)
            } catch {
                throw LuaHostError("http.request: \(error)")
            }
            for address in addresses {
                if let refusal = policy.refusal(host: bareHost, address: address) {
                    throw LuaHostError("http.request: blocked by policy: \(refusal) (allow it in moonhook.yaml under http.allow)")
                }
            }
            var request = HTTPClientRequest(url: current)
            // Plain HTTP goes to the address that was checked, so a second DNS answer cannot differ.
            if scheme == "http" {
                var pinned = components
                let address = addresses[0]
                pinned.host = address.count == 16 ? "[\(IPRange.format(address))]" : IPRange.format(address)
                if let pinnedURL = pinned.string { request = HTTPClientRequest(url: pinnedURL) }
                request.headers.add(name: "Host", value: components.port.map { "\(host):\($0)" } ?? host)
            }
            request.method = method
            for (name, value) in headers where name.lowercased() != "host" { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, deadline: NIODeadline.now() + .nanoseconds(Int64(max(0, (deadline - .now).totalNanoseconds))))
            } catch {
                throw LuaHostError("http.request: \(Self.describe(error, timeout: timeout))")
            }
            if [301, 302, 303, 307, 308].contains(response.status.code), let location = response.headers.first(name: "location") {
                guard let next = URL(string: location, relativeTo: URL(string: current))?.absoluteString else {
                    throw LuaHostError("http.request: invalid redirect location '\(location)'")
                }
                if response.status.code == 303 || ([301, 302].contains(response.status.code) && method == .POST) {
                    method = .GET
                    body = nil
                }
                current = next
                continue
            }
            let collected = try await Self.collect(response, limit: policy.maxResponseBytes, deadline: deadline, timeout: timeout)
            var headerFields: [String: LuaValue] = [:]
            for header in response.headers {
                let name = header.name.lowercased()
                if case .string(let existing)? = headerFields[name] {
                    headerFields[name] = .string(existing + Array(", \(header.value)".utf8))
                } else {
                    headerFields[name] = .string(header.value)
                }
            }
            return .table(array: [], fields: [
                "status": .integer(Int64(response.status.code)),
                "headers": .table(array: [], fields: headerFields),
                "body": .string(collected),
            ])
        }
        throw LuaHostError("http.request: too many redirects (more than \(policy.maxRedirects))")
    }

    /// Reads the body, at most `limit` bytes, before `deadline`.
    static func collect(_ response: HTTPClientResponse, limit: Int, deadline: ContinuousClock.Instant, timeout: Duration) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                do {
                    return Array(buffer: try await response.body.collect(upTo: limit))
                } catch is NIOTooManyBytesError {
                    throw LuaHostError("http.request: response larger than \(limit) bytes")
                }
            }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let body = first else {
                throw LuaHostError("http.request: timed out after \(timeout.totalMilliseconds) ms")
            }
            return body
        }
    }

    static func describe(_ error: Error, timeout: Duration) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out after \(timeout.totalMilliseconds) ms"
            default: break
            }
        }
        let text = "\(error)"
        if text.contains("refused") || text.contains("errno: 111") { return "connection refused" }
        if text.lowercased().contains("timeout") || text.lowercased().contains("timed out") { return "timed out after \(timeout.totalMilliseconds) ms" }
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}
