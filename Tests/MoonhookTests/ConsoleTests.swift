import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import Moonhook
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing

/// The console's security, through a real server: pages and the live stream refuse without a
/// session, a wrong token makes none, hostile payloads are shown escaped, and changes need the
/// session's CSRF token.
@Suite("Console", .timeLimit(.minutes(2)))
struct ConsoleTests {
    static let pages = ["/console", "/console/deliveries", "/console/deliveries/1", "/console/deliveries/confirm?action=purge", "/console/sources",
        "/console/refusals", "/console/live"]

    /// Source `s`: no verification; `ping.lua` logs what it was sent, `fail.lua` fails.
    static func handlers() throws -> TestHandlers {
        let handlers = try TestHandlers(copyExamples: false)
        try handlers.write("s/source.yaml", "scheme: none\nid: /id\n")
        try handlers.write("s/ping.lua", "return function(e) log.info('seen ' .. tostring(e.body.note), {note = e.body.note}) end\n")
        try handlers.write("s/fail.lua", "return { retries = 0, handle = function(e) error('bad <b>' .. tostring(e.body.note) .. '</b>') end }\n")
        return handlers
    }

    static func configuration(_ handlers: TestHandlers, _ engine: StoreEngine = .sqlite) async throws -> ServerConfiguration {
        var configuration = try await DeliveryTests.configuration(handlers, engine)
        configuration.deliveries.lease = .seconds(60)
        return configuration
    }

    /// Signs in and returns the session cookie (`name=value`).
    static func signIn(_ client: any TestClientProtocol, token: String = "admin-token") async throws -> String {
        let response = try await client.execute(
            uri: "/console/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "token=\(token)"))
        #expect(response.status == .seeOther)
        let cookie = try #require(response.headers[.setCookie], "signing in set no cookie")
        return String(cookie.prefix { $0 != ";" })
    }

    static func get(_ client: any TestClientProtocol, _ uri: String, cookie: String?) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: .get, headers: headers)
    }

    static func postForm(_ client: any TestClientProtocol, _ uri: String, cookie: String?, _ form: String) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: form))
    }

    /// The CSRF token a page's forms carry.
    static func csrf(in page: TestResponse) throws -> String {
        let html = String(buffer: page.body)
        let marker = #"name="csrf" value=""#
        let start = try #require(html.range(of: marker), "the page has no CSRF field").upperBound
        return String(html[start...].prefix { $0 != "\"" })
    }

    @Test func everyPageAndTheStreamRefuseWithoutASession() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        let app = try await buildApplication(configuration: try await Self.configuration(handlers), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let forged = "\(ConsoleSession.cookieName)=9999999999.00.\(String(repeating: "ab", count: 32))"
            // Signed with another admin token: a session of another deployment, or of the token before it was rotated.
            let otherKey = "\(ConsoleSession.cookieName)=\(ConsoleSession(adminToken: "old-token", ttl: .seconds(3600)).issue())"
            for cookie in [nil, forged, otherKey] {
                for page in Self.pages {
                    let response = try await Self.get(client, page, cookie: cookie)
                    #expect(response.status == .seeOther && response.headers[.location] == "/console/login", "\(page) with \(cookie ?? "no cookie")")
                    #expect(response.body.readableBytes == 0, "\(page) showed content without a session")
                }
                let stream = try await Self.get(client, "/admin/stream", cookie: cookie)
                #expect(stream.status == .unauthorized, "the stream with \(cookie ?? "no cookie")")
                for action in ["/console/deliveries/1/replay", "/console/deliveries/purge", "/console/deliveries/replay", "/console/logout"] {
                    #expect(try await Self.postForm(client, action, cookie: cookie, "csrf=x").status == .forbidden, "\(action)")
                }
            }
            let wrongBearer = try await client.execute(uri: "/admin/stream", method: .get, headers: [.authorization: "Bearer nope"])
            #expect(wrongBearer.status == .unauthorized)
            // The sign-in page itself and the assets are open.
            #expect(try await Self.get(client, "/console/login", cookie: nil).status == .ok)
            #expect(try await Self.get(client, "/console/assets/console.js", cookie: nil).status == .ok)
        }
    }

    @Test func aWrongTokenMakesNoSessionAndTheRightOneASignedCookie() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        let app = try await buildApplication(configuration: try await Self.configuration(handlers), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            for wrong in ["wrong", "", "admin-toke", "admin-token2"] {
                let response = try await Self.postForm(client, "/console/login", cookie: nil, "token=\(wrong)")
                #expect(response.status == .unauthorized, "token '\(wrong)'")
                #expect(response.headers[.setCookie] == nil, "token '\(wrong)' made a session")
                #expect(String(buffer: response.body).contains("That is not the admin token."))
            }
            let response = try await Self.postForm(client, "/console/login", cookie: nil, "token=admin-token")
            #expect(response.status == .seeOther && response.headers[.location] == "/console")
            let cookie = try #require(response.headers[.setCookie])
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age=43200"), "\(cookie)")
            #expect(!cookie.contains("Secure"), "over plain HTTP")
            let behindTLS = try await client.execute(
                uri: "/console/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("X-Forwarded-Proto")!: "https"],
                body: ByteBuffer(string: "token=admin-token"))
            #expect(behindTLS.headers[.setCookie]?.contains("Secure") == true)
            let session = String(cookie.prefix { $0 != ";" })
            for page in Self.pages where page != "/console/deliveries/1" {
                let shown = try await Self.get(client, page, cookie: session)
                #expect(shown.status == .ok, "\(page)")
                #expect(shown.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            }
            // Signing out ends the cookie in the browser.
            let overview = try await Self.get(client, "/console", cookie: session)
            let out = try await Self.postForm(client, "/console/logout", cookie: session, "csrf=\(try Self.csrf(in: overview))")
            #expect(out.status == .seeOther && out.headers[.setCookie]?.contains("Max-Age=0") == true)
        }
    }

    /// A session is the admin token's: any instance with the same token takes it, a new token ends
    /// it, and it ends at its expiry.
    @Test func sessionsFollowTheTokenAndExpire() {
        let now = Date()
        let session = ConsoleSession(adminToken: "token-one", ttl: .seconds(3600)).issue(now: now)
        #expect(ConsoleSession(adminToken: "token-one", ttl: .seconds(60)).isValid(session, now: now))
        #expect(!ConsoleSession(adminToken: "token-two", ttl: .seconds(3600)).isValid(session, now: now))
        #expect(!ConsoleSession(adminToken: "token-one", ttl: .seconds(3600)).isValid(session, now: now.addingTimeInterval(3601)))
        var parts = session.split(separator: ".").map(String.init)
        parts[0] = String(Int(parts[0])! + 86400)
        #expect(!ConsoleSession(adminToken: "token-one", ttl: .seconds(3600)).isValid(parts.joined(separator: "."), now: now), "a lengthened expiry")
        let keeper = ConsoleSession(adminToken: "token-one", ttl: .seconds(3600))
        let other = keeper.issue(now: now)
        #expect(keeper.checksCSRF(keeper.csrfToken(for: session), session: session))
        #expect(!keeper.checksCSRF(keeper.csrfToken(for: other), session: session), "another session's CSRF token")
        #expect(!keeper.checksCSRF(nil, session: session))
    }

    @Test func hostileDeliveriesAreShownEscaped() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        let app = try await buildApplication(configuration: try await Self.configuration(handlers), environment: [:], logger: LogRecords().logger())
        let hostile = #""><script>alert('x')</script><img src=x onerror=alert(1)>"#
        try await app.test(.live) { client in
            let cookie = try await Self.signIn(client)
            let body = try JSONSerialization.data(withJSONObject: ["type": "ping", "id": "h-\(hostile)", "note": hostile])
            var headers: HTTPFields = [.contentType: "application/json", HTTPField.Name("X-Evil")!: hostile, HTTPField.Name("X-Hub-Signature-256")!: "sha256=\(hostile)"]
            #expect(try await client.execute(uri: "/hooks/s", method: .post, headers: headers, body: ByteBuffer(bytes: body)).status == .accepted)
            let failing = try JSONSerialization.data(withJSONObject: ["type": "fail", "id": "f-1", "note": hostile])
            headers = [.contentType: "application/json"]
            #expect(try await client.execute(uri: "/hooks/s", method: .post, headers: headers, body: ByteBuffer(bytes: failing)).status == .accepted)
            // A refusal whose body is hostile, for the Refusals page.
            #expect(try await client.execute(uri: "/hooks/s", method: .post, headers: headers, body: ByteBuffer(string: "{\"x\":\"\(hostile)")).status == .badRequest)
            _ = try await DeliveryTests.adminUntil(client, "/admin/deliveries?source=s") {
                (($0["deliveries"] as? [[String: Any]]) ?? []).allSatisfy { ($0["status"] as? [String: Int])?.keys.allSatisfy { $0 == "done" || $0 == "dead" } ?? false }
                    && (($0["deliveries"] as? [Any])?.count ?? 0) == 2
            }
            let list = try await DeliveryTests.admin(client, "/admin/deliveries?source=s")
            let seqs = ((list["deliveries"] as? [[String: Any]]) ?? []).compactMap { $0["seq"] as? Int }
            #expect(seqs.count == 2)
            var pages = ["/console/deliveries", "/console/refusals", "/console/deliveries?id=\(hostile.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"]
            pages += seqs.map { "/console/deliveries/\($0)" }
            for page in pages {
                let response = try await Self.get(client, page, cookie: cookie)
                #expect(response.status == .ok, "\(page)")
                let html = String(buffer: response.body)
                #expect(!html.contains("<script>alert"), "\(page) carries the sender's script as markup")
                #expect(!html.contains("<img src=x"), "\(page) carries the sender's image tag as markup")
                #expect(!html.contains("<b>"), "\(page) carries a handler's markup")
                #expect(!html.contains(#""><script"#), "\(page) lets a value break out of an attribute")
                #expect(html.contains("&lt;script&gt;alert("), "\(page) does not show the hostile text escaped")
            }
            // The handler's log line, its error and the headers are on the deliveries' pages, escaped.
            let pagesText = try await seqs.asyncMap { String(buffer: try await Self.get(client, "/console/deliveries/\($0)", cookie: cookie).body) }.joined()
            #expect(pagesText.contains("seen &quot;&gt;&lt;script&gt;"), "the handler's log line")
            #expect(pagesText.contains("bad &lt;b&gt;&quot;&gt;&lt;script&gt;"), "the handler's error")
            #expect(pagesText.contains(#"<pre class="excerpt"> 1 | return { retries = 0, handle = function(e) error(&#39;bad &lt;b&gt;&#39;"#), "the line the error points at, escaped")
            #expect(pagesText.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"), "the X-Evil header")
            #expect(pagesText.contains("sha256=&quot;… (64 characters)"), "the signature header, shortened")
        }
    }

    @Test(arguments: StoreEngine.all) func replayAndPurgeNeedTheSessionsCSRFToken(engine: StoreEngine) async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        let app = try await buildApplication(configuration: try await Self.configuration(handlers, engine), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let cookie = try await Self.signIn(client)
            let otherCookie = try await Self.signIn(client)
            for index in 0..<3 { #expect(try await DeliveryTests.post(client, "s", #"{"type":"ping","id":"p-\#(index)"}"#).status == .accepted) }
            let done = try await DeliveryTests.adminUntil(client, "/admin/deliveries?status=done&source=s") { ($0["deliveries"] as? [Any])?.count == 3 }
            let seq = try #require((done["deliveries"] as? [[String: Any]])?.first?["seq"] as? Int)
            let page = try await Self.get(client, "/console/deliveries/\(seq)", cookie: cookie)
            let csrf = try Self.csrf(in: page)
            let otherCSRF = try Self.csrf(in: try await Self.get(client, "/console/deliveries/\(seq)", cookie: otherCookie))
            #expect(csrf != otherCSRF)

            // Refused: no token, a wrong one, another session's.
            for form in ["", "csrf=", "csrf=\(String(repeating: "0", count: 64))", "csrf=\(otherCSRF)"] {
                #expect(try await Self.postForm(client, "/console/deliveries/\(seq)/replay", cookie: cookie, form).status == .forbidden, "replay with '\(form)'")
                #expect(try await Self.postForm(client, "/console/deliveries/purge", cookie: cookie, form + "&source=s").status == .forbidden, "purge with '\(form)'")
                #expect(try await Self.postForm(client, "/console/deliveries/replay", cookie: cookie, form + "&source=s").status == .forbidden)
            }
            let untouched = try await DeliveryTests.admin(client, "/admin/deliveries/\(seq)")
            #expect((untouched["attempts"] as? [Any])?.count == 1, "a refused replay ran")
            #expect((try await DeliveryTests.admin(client, "/admin/deliveries?source=s")["deliveries"] as? [Any])?.count == 3, "a refused purge deleted")

            // With the session's token: replayed, a new attempt appears.
            let replayed = try await Self.postForm(client, "/console/deliveries/\(seq)/replay", cookie: cookie, "csrf=\(csrf)")
            #expect(replayed.status == .seeOther && replayed.headers[.location] == "/console/deliveries/\(seq)?done=replayed")
            _ = try await DeliveryTests.adminUntil(client, "/admin/deliveries/\(seq)") { ($0["attempts"] as? [Any])?.count == 2 }
            // The confirmation counts what the filter matches; purging takes exactly those.
            let confirm = try await Self.get(client, "/console/deliveries/confirm?action=purge&source=s&id=p-1", cookie: cookie)
            #expect(String(buffer: confirm.body).contains("Purge 1 delivery"), "\(String(buffer: confirm.body))")
            let purged = try await Self.postForm(client, "/console/deliveries/purge", cookie: cookie, "csrf=\(csrf)&source=s&id=p-1")
            #expect(purged.status == .seeOther && purged.headers[.location]?.contains("done=purged%201") == true, "\(purged.headers)")
            let left = try await DeliveryTests.admin(client, "/admin/deliveries?source=s")
            #expect(((left["deliveries"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }.sorted() == ["p-0", "p-2"])
            let replayAll = try await Self.postForm(client, "/console/deliveries/replay", cookie: cookie, "csrf=\(csrf)&source=s")
            #expect(replayAll.headers[.location]?.contains("done=replayed%202") == true, "\(replayAll.headers)")
        }
    }

    @Test func withoutAnAdminTokenTheConsoleIsOff() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        var configuration = try await Self.configuration(handlers)
        configuration.adminToken = nil
        let app = try await buildApplication(configuration: configuration, environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let pages: [String] = Self.pages + ["/console/login", "/admin/stream"]
            for page in pages {
                let response = try await Self.get(client, page, cookie: nil)
                #expect(response.status == .notFound, "\(page)")
            }
            let signIn = try await Self.postForm(client, "/console/login", cookie: nil, "token=")
            #expect(signIn.status == .notFound)
        }
    }

    /// Filters as browsers send them (`+` for a space), paging that keeps the page size, a purge
    /// that needs a filter, and a console cookie that never reaches the store.
    @Test func filtersPagingAndWhatAPurgeNeeds() async throws {
        let handlers = try Self.handlers()
        defer { handlers.remove() }
        let app = try await buildApplication(configuration: try await Self.configuration(handlers), environment: [:], logger: LogRecords().logger())
        try await app.test(.live) { client in
            let cookie = try await Self.signIn(client)
            for index in 0..<3 { #expect(try await DeliveryTests.post(client, "s", #"{"type":"big deal","id":"b-\#(index)"}"#).status == .accepted) }
            let spaced = String(buffer: try await Self.get(client, "/console/deliveries?type=big+deal&limit=2", cookie: cookie).body)
            #expect(spaced.contains(">b-2<") && spaced.contains(">b-1<") && !spaced.contains(">b-0<"), "\(spaced)")
            let older = try #require(spaced.range(of: #"id="older" href=""#).map { String(spaced[$0.upperBound...].prefix { $0 != "\"" }) })
            #expect(older.contains("type=big%20deal") && older.contains("limit=2") && older.contains("cursor="), "\(older)")
            let next = String(buffer: try await Self.get(client, older.replacingOccurrences(of: "&amp;", with: "&"), cookie: cookie).body)
            #expect(next.contains(">b-0<") && !next.contains(">b-1<"))

            // No purge without a filter: refused on the confirmation and when posted anyway.
            let confirm = String(buffer: try await Self.get(client, "/console/deliveries/confirm?action=purge", cookie: cookie).body)
            #expect(confirm.contains("A purge needs a filter") && !confirm.contains(#"id="confirm""#))
            let csrf = try Self.csrf(in: try await Self.get(client, "/console", cookie: cookie))
            #expect(try await Self.postForm(client, "/console/deliveries/purge", cookie: cookie, "csrf=\(csrf)").status == .badRequest)
            #expect((try await DeliveryTests.admin(client, "/admin/deliveries")["deliveries"] as? [Any])?.count == 3, "a purge without a filter deleted")
            // The confirmation fixes the time range: what arrives after it is left alone.
            let fixed = String(buffer: try await Self.get(client, "/console/deliveries/confirm?action=purge&source=s&since=1h", cookie: cookie).body)
            #expect(fixed.contains(#"name="until" value="20"#) && fixed.contains(#"name="since" value="20"#), "\(fixed)")

            // A console session cookie sent to a hook is not stored with the delivery.
            let headers: HTTPFields = [.contentType: "application/json", .cookie: "\(cookie); theme=dark"]
            #expect(try await client.execute(uri: "/hooks/s", method: .post, headers: headers, body: ByteBuffer(string: #"{"type":"big deal","id":"c-1"}"#)).status == .accepted)
            let list = try await DeliveryTests.admin(client, "/admin/deliveries?id=c-1")
            let seq = try #require((list["deliveries"] as? [[String: Any]])?.first?["seq"] as? Int)
            let stored = try await DeliveryTests.admin(client, "/admin/deliveries/\(seq)")
            #expect((stored["headers"] as? [String: String])?["cookie"] == "theme=dark", "\(stored["headers"] ?? "")")
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
