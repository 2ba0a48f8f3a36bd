import Foundation
import Synchronization

/// A refused request, as kept for an operator asking "why didn't it trigger?". Kept as received
/// and redacted when read (`message`, `bodyPrefix`): reading is rare, refusing is not.
public struct Refusal: Sendable, Equatable {
    public var time: Date
    /// The source named in the path, or `_unknown` when no such source is served.
    public var source: String
    public var status: Int
    public var reason: RefusalReason
    /// The peer's address (the proxy's, behind one).
    public var remoteAddress: String?
    /// Header names only, lower-cased, in the order sent: values may hold credentials.
    public var headerNames: [String]
    /// The body's size in bytes (as announced by `content-length` when it was not read).
    public var bodyBytes: Int
    private let sent: String
    /// The body's first `bodyLimit` bytes plus the longest secret's length (see `RefusalLog.prefix`).
    private let window: [UInt8]
    private let bodyLimit: Int
    private let secrets: [String]

    /// `body`: what was read of it; `secrets`: the source's, which nothing shown may contain.
    init(
        time: Date, source: String, status: Int, reason: RefusalReason, message: String, remoteAddress: String?, headerNames: [String], bodyBytes: Int,
        body: [UInt8], bodyLimit: Int, secrets: [String]
    ) {
        self.time = time
        self.source = source
        self.status = status
        self.reason = reason
        self.remoteAddress = remoteAddress
        self.headerNames = headerNames
        self.bodyBytes = bodyBytes
        sent = message
        self.bodyLimit = bodyLimit
        self.secrets = secrets
        window = bodyLimit > 0 ? Array(body.prefix(bodyLimit + secrets.reduce(0) { max($0, $1.utf8.count) })) : []
    }

    /// The one-line reason the sender was given, the source's secrets replaced by `[redacted]`.
    public var message: String { RefusalLog.redact(sent, secrets: secrets) }
    /// The body's first bytes, with the source's secrets replaced by `[redacted]`.
    public var bodyPrefix: String { RefusalLog.prefix(of: window, limit: bodyLimit, secrets: secrets) }
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

        mutating func add(_ refusal: Refusal, keep: Int) {
            if items.count < keep {
                items.append(refusal)
            } else {
                items[next] = refusal
                next = (next + 1) % keep
            }
        }
    }

    public init(keep: Int) {
        self.keep = keep
    }

    func add(_ refusal: Refusal) {
        guard keep > 0 else { return }
        state.withLock { rings in
            // In place: a copy of the ring would copy its whole array on every refusal.
            rings[refusal.source, default: Ring()].add(refusal, keep: keep)
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
    /// just before the cut is replaced whole, not left in part; cut on a character boundary.
    /// Works on bytes: it runs for every refused request.
    static func prefix(of body: [UInt8], limit: Int, secrets: [String]) -> String {
        guard limit > 0, !body.isEmpty else { return "" }
        let needles = secrets.map { Array($0.utf8) }.filter { !$0.isEmpty }
        let longest = needles.map(\.count).max() ?? 0
        var bytes = redacted(Array(body.prefix(limit + longest)), needles)
        if bytes.count > limit {
            var end = limit
            // Back to the start of the character the cut falls in (continuation bytes are 10xxxxxx).
            while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
            bytes.removeSubrange(end...)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `text` with each of `secrets` replaced by `[redacted]` (the longest first, where they overlap).
    static func redact(_ text: String, secrets: [String]) -> String {
        let needles = secrets.map { Array($0.utf8) }.filter { !$0.isEmpty }
        guard !needles.isEmpty else { return text }
        return String(decoding: redacted(Array(text.utf8), needles), as: UTF8.self)
    }

    private static let marker = Array("[redacted]".utf8)

    private static func redacted(_ bytes: [UInt8], _ needles: [[UInt8]]) -> [UInt8] {
        guard !needles.isEmpty else { return bytes }
        let ordered = needles.sorted { $0.count > $1.count }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        scan: while index < bytes.count {
            for needle in ordered where bytes[index] == needle[0] && index + needle.count <= bytes.count {
                if bytes[index..<(index + needle.count)].elementsEqual(needle) {
                    output += marker
                    index += needle.count
                    continue scan
                }
            }
            output.append(bytes[index])
            index += 1
        }
        return output
    }
}
