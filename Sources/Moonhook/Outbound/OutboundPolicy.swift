/// What handlers may reach with `http`: by default only public addresses. Loopback, private,
/// link-local (cloud metadata at 169.254.169.254 included), multicast and reserved addresses are
/// refused, checked on every resolved address of the host (and again at every redirect), unless
/// `moonhook.yaml` allows the host or the range.
public struct OutboundPolicy: Sendable, Equatable {
    /// Host names allowed whatever they resolve to.
    public var allowedHosts: Set<String> = []
    /// Address ranges allowed, such as `10.0.0.0/8` or `127.0.0.1`.
    public var allowedRanges: [IPRange] = []
    /// Calls one invocation may make.
    public var maxCallsPerInvocation = 20
    /// Largest response body read, in bytes.
    public var maxResponseBytes = 1 << 20
    /// Redirects followed per call.
    public var maxRedirects = 3
    /// Timeout of a call that sets none (the invocation's deadline applies as well).
    public var defaultTimeout: Duration = .seconds(10)

    public init() {}

    /// Why `address` (of `host`) may not be reached, or nil when it may.
    func refusal(host: String, address: [UInt8]) -> String? {
        if allowedHosts.contains(host.lowercased()) { return nil }
        if allowedRanges.contains(where: { $0.contains(address) }) { return nil }
        guard let kind = IPRange.specialPurpose(address) else { return nil }
        return "\(IPRange.format(address)) is a \(kind) address"
    }
}

/// An IPv4 or IPv6 network, `address/prefix`.
public struct IPRange: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefix: Int

    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let address = IPRange.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        let prefix = parts.count == 2 ? Int(parts[1]) : bits
        guard let prefix, (0...bits).contains(prefix) else { return nil }
        self.network = address
        self.prefix = prefix
    }

    public var description: String { "\(IPRange.format(network))/\(prefix)" }

    func contains(_ address: [UInt8]) -> Bool {
        let address = address.count == 16 && network.count == 4 ? (IPRange.mappedIPv4(address) ?? address) : address
        guard address.count == network.count else { return false }
        var remaining = prefix
        for (a, b) in zip(address, network) {
            if remaining <= 0 { return true }
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if a & mask != b & mask { return false }
            remaining -= 8
        }
        return true
    }

    private static let blocked: [(IPRange, String)] = [
        ("0.0.0.0/8", "reserved"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local (cloud metadata)"), ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"), ("192.0.2.0/24", "documentation"), ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"), ("::1/128", "loopback"), ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"), ("ff00::/8", "multicast"), ("2001:db8::/32", "documentation"),
    ].map { (IPRange($0.0)!, $0.1) }

    /// The kind of special-purpose address `address` is, or nil for a public one. IPv4 addresses
    /// inside IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged as IPv4.
    static func specialPurpose(_ address: [UInt8]) -> String? {
        if address.count == 16, let embedded = mappedIPv4(address) { return specialPurpose(embedded) }
        return blocked.first { $0.0.contains(address) }?.1
    }

    static func mappedIPv4(_ address: [UInt8]) -> [UInt8]? {
        guard address.count == 16 else { return nil }
        if address[0..<10].allSatisfy({ $0 == 0 }) && address[10] == 0xFF && address[11] == 0xFF { return Array(address[12...]) }
        if address[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0][...] { return Array(address[12...]) }
        return nil
    }

    static func parse(_ text: String) -> [UInt8]? {
        let v4 = text.split(separator: ".", omittingEmptySubsequences: false)
        if v4.count == 4, !text.contains(":") {
            let bytes = v4.compactMap { UInt8($0) }
            return bytes.count == 4 ? bytes : nil
        }
        guard text.contains(":") else { return nil }
        var halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                if group.contains("."), let v4 = parse(String(group)) {
                    result += [UInt16(v4[0]) << 8 | UInt16(v4[1]), UInt16(v4[2]) << 8 | UInt16(v4[3])]
                } else {
                    guard group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        if halves.count == 1 { halves.append("") }
        guard let head = groups(halves[0]), let tail = groups(halves[1]) else { return nil }
        let missing = 8 - head.count - tail.count
        guard missing >= 0, text.contains("::") || missing == 0 else { return nil }
        return (head + Array(repeating: 0, count: missing) + tail).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    static func format(_ address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}
