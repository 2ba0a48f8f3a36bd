/// Why a request to `/hooks/{source}` was answered with an error, as a class: the `reason` label of
/// `moonhook_refusals_total` and of kept refusals. A fixed set, so that labels stay bounded.
public enum RefusalReason: String, Sendable, CaseIterable, Codable {
    /// No source of that name is served.
    case source
    /// The signature (or token) is missing, malformed or wrong.
    case signature
    /// The signed timestamp is outside the tolerance (a replay, or a clock far off).
    case timestamp
    /// The body cannot be read or decoded (broken JSON, a form that does not parse, cut short).
    case body
    /// No event type where the source says it is, or a type reserved for moonhook itself.
    case type
    /// The body is larger than `max_body_bytes`.
    case size
    /// A method the source does not take (`GET` without `respond: sync`).
    case method
    /// A content type the source's scheme does not take.
    case content_type
    /// The sender's address is not allowed (inbound allow-lists).
    case address
    /// Past the source's rate limit.
    case rate
    /// The store could not take the delivery (503).
    case unavailable
    /// A `respond: sync` handler had no free slot in time (503).
    case busy
    /// A `respond: sync` handler failed, or its answer was unusable (500).
    case handler
}

extension RefusalReason {
    /// The class a status stands for when nothing more precise is known.
    init(status: Int) {
        switch status {
        case 401, 403: self = .signature
        case 404: self = .source
        case 405: self = .method
        case 413: self = .size
        case 415: self = .content_type
        case 429: self = .rate
        case 503: self = .unavailable
        case 500...: self = .handler
        default: self = .body
        }
    }
}
