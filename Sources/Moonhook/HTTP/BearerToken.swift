import Hummingbird
import WebhookVerification

/// The admin token, as `/admin` and `/metrics` check it: `Authorization: Bearer <admin_token>`,
/// compared in constant time. Without a token configured, what it guards is off (404).
struct BearerToken: Sendable {
    let token: String?
    /// What it guards, for the refusals: `the admin API`, `/metrics`.
    let guarding: String

    func authorize(_ request: Request) throws {
        guard let token else { throw HTTPFailure(.notFound, "\(guarding) is off (set admin_token)") }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), Self.matches(String(header.dropFirst(7)), token) else {
            throw HTTPFailure(.unauthorized, "\(guarding) needs Authorization: Bearer <admin_token>")
        }
    }

    /// Whether `candidate` is `token`, compared as SHA-256 digests in constant time: equal
    /// lengths, so that the time taken tells nothing of the token's length either.
    static func matches(_ candidate: String, _ token: String) -> Bool {
        Digest.constantTimeEquals(Digest.hash(.sha256, Array(candidate.utf8)), Digest.hash(.sha256, Array(token.utf8)))
    }
}
