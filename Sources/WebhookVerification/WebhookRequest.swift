/// The parts of an HTTP request that a verifier looks at: headers as received, the raw body, and
/// the query string (without its `?`), which Twilio signs.
public struct WebhookRequest: Sendable {
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var query: String

    public init(headers: [(name: String, value: String)], body: [UInt8], query: String = "") {
        self.headers = headers
        self.body = body
        self.query = query
    }

    /// The first value of header `name`, compared without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        utf8.count == other.utf8.count && zip(utf8, other.utf8).allSatisfy { lowerASCII($0) == lowerASCII($1) }
    }
}

@inline(__always)
private func lowerASCII(_ byte: UInt8) -> UInt8 {
    (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
}
