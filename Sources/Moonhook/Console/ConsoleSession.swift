import Foundation
import HTTPTypes
import Hummingbird
import WebhookVerification

/// The console's sign-in, kept in the browser and nowhere else: a cookie holding its expiry and a
/// random nonce, signed with HMAC-SHA256 under a key derived from the admin token. Any instance
/// with the same token accepts it (behind a load balancer no session store is shared), and a new
/// admin token ends every session at once. The CSRF token of a session is derived from it the same
/// way, so forms need no server-side state either.
struct ConsoleSession: Sendable {
    static let cookieName = "moonhook_session"

    private let token: String
    private let key: [UInt8]
    let ttl: Duration

    init(adminToken: String, ttl: Duration) {
        token = adminToken
        key = Digest.hmac(.sha256, key: Array(adminToken.utf8), data: Array("moonhook console session v1".utf8))
        self.ttl = ttl
    }

    /// Whether `candidate` is the admin token (constant time).
    func admits(_ candidate: String) -> Bool {
        BearerToken.matches(candidate, token)
    }

    /// A new session value: `expiry.nonce.signature`.
    func issue(now: Date = Date()) -> String {
        let expiry = Int64(now.timeIntervalSince1970) + ttl.components.seconds
        var generator = SystemRandomNumberGenerator()
        let nonce = Digest.hex((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
        let payload = "\(expiry).\(nonce)"
        return "\(payload).\(sign(payload))"
    }

    /// Whether `value` is a session this key signed that has not expired.
    func isValid(_ value: String, now: Date = Date()) -> Bool {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let expiry = Int64(parts[0]), expiry > Int64(now.timeIntervalSince1970) else { return false }
        let expected = sign("\(parts[0]).\(parts[1])")
        return Digest.constantTimeEquals(Array(parts[2].utf8), Array(expected.utf8))
    }

    /// The session of `request`, when it carries a valid one.
    func session(of request: Request) -> String? {
        guard let value = request.cookies[Self.cookieName]?.value, isValid(value) else { return nil }
        return value
    }

    /// The token every state-changing form of `session` carries.
    func csrfToken(for session: String) -> String {
        sign("csrf.\(session)")
    }

    func checksCSRF(_ candidate: String?, session: String) -> Bool {
        guard let candidate else { return false }
        return Digest.constantTimeEquals(Array(candidate.utf8), Array(csrfToken(for: session).utf8))
    }

    /// The cookie that carries `value`: HttpOnly, SameSite=Strict, for the console and the stream
    /// only, `Secure` when the request came over TLS (a proxy in front says so with
    /// `X-Forwarded-Proto: https`).
    func cookie(_ value: String, for request: Request) -> Cookie {
        Cookie(
            name: Self.cookieName, value: value, maxAge: Int(ttl.components.seconds), path: "/", secure: Self.overTLS(request), httpOnly: true,
            sameSite: .strict)
    }

    /// A cookie that ends the session in the browser.
    func endingCookie(for request: Request) -> Cookie {
        Cookie(name: Self.cookieName, value: "", maxAge: 0, path: "/", secure: Self.overTLS(request), httpOnly: true, sameSite: .strict)
    }

    static func overTLS(_ request: Request) -> Bool {
        request.uri.scheme == .https || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
    }

    private func sign(_ text: String) -> String {
        Digest.hex(Digest.hmac(.sha256, key: key, data: Array(text.utf8)))
    }
}
