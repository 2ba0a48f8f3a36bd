import Foundation
import Synchronization

/// A refused request, as kept for an operator asking "why didn't it trigger?".
public struct Refusal: Sendable, Equatable {
    public var time: Date
    /// The source named in the path, or `_unknown` when no such source is served.
    public var source: String
    public var status: Int
    public var reason: RefusalReason
    /// The one-line reason the sender was given.
    public var message: String
    /// The peer's address (the proxy's, behind one).
    public var remoteAddress: String?
    /// Header names only, lower-cased, in the order sent: values may hold credentials.
    public var headerNames: [String]
    /// The body's size in bytes (as announced by `content-length` when it was not read).
    public var bodyBytes: Int
    /// The body's first bytes, with the source's secrets replaced by `[redacted]`.
    public var bodyPrefix: String
}

/// The last refused requests of each source, in memory, per instance: `refusals.keep` each (the
/// oldest goes first). The sources are those served plus `_unknown`, so the whole stays bounded.
public final class RefusalLog: Sendable {
    private let keep: Int
    private let state = Mutex<[String: Ring]>([:])

    /// One source's refusals: a ring of at most `keep`.
    private struct Ring {
        var items: [Refusal] = []
        var next = 0
    }

    public init(keep: Int) {
        self.keep = keep
    }

    func add(_ refusal: Refusal) {
        guard keep > 0 else { return }
        state.withLock { rings in
            var ring = rings[refusal.source] ?? Ring()
            if ring.items.count < keep {
                ring.items.append(refusal)
            } else {
                ring.items[ring.next] = refusal
                ring.next = (ring.next + 1) % keep
            }
            rings[refusal.source] = ring
        }
    }

    /// The refusals kept, newest first: of `source`, or of every source.
    public func list(source: String? = nil) -> [Refusal] {
        let rings = state.withLock { rings in source.map { name in rings[name].map { [$0] } ?? [] } ?? Array(rings.values) }
        let all = rings.flatMap { ring in Array(ring.items[ring.next...] + ring.items[..<ring.next]) }
        return all.sorted { $0.time > $1.time }
    }

    /// The first `limit` bytes of `body` as text, each of `secrets` replaced by `[redacted]`.
    /// Redacted on a window longer than `limit` by the longest secret, so that a secret starting
    /// just before the cut is replaced whole, not left in part.
    static func prefix(of body: [UInt8], limit: Int, secrets: [String]) -> String {
        guard limit > 0, !body.isEmpty else { return "" }
        let longest = secrets.map(\.utf8.count).max() ?? 0
        var window = String(decoding: body.prefix(limit + longest), as: UTF8.self)
        for secret in secrets.filter({ !$0.isEmpty }).sorted(by: { $0.count > $1.count }) {
            window = window.replacingOccurrences(of: secret, with: "[redacted]")
        }
        var cut = ""
        var used = 0
        for character in window {
            let size = character.utf8.count
            if used + size > limit { break }
            cut.append(character)
            used += size
        }
        return cut
    }
}
