import HTTPTypes
import NIOCore

/// The address a request came from. Behind proxies listed in `trusted_proxies`, it is found in
/// `X-Forwarded-For` (or, without it, `Forwarded`), read from the right: each trusted proxy wrote
/// the address it received from, so the first entry that is not a trusted proxy is the client. The
/// leftmost entry is never taken on trust: the client writes it itself. An entry that is not an
/// address ends the walk and is the client (so that an allow-list refuses it).
struct ClientAddress: Sendable, CustomStringConvertible {
    /// Where the address was read: the socket's peer (written out only when a log or a kept
    /// refusal asks, since most requests never need the text), or a forwarding header's entry.
    private enum Origin: Sendable {
        case peer(SocketAddress)
        case written(String)
    }

    private let origin: Origin
    /// Its bytes (4 or 16), when it is an IP address.
    let bytes: [UInt8]?

    /// The address as written, for logs and kept refusals.
    var text: String {
        switch origin {
        case .peer(let peer): peer.ipAddress ?? peer.pathname ?? "unknown"
        case .written(let text): text
        }
    }

    var description: String { text }

    static func resolve(peer: SocketAddress?, headers: HTTPFields, trusted: [IPRange]) -> ClientAddress? {
        guard let peer else { return nil }
        var current = ClientAddress(origin: .peer(peer), bytes: bytes(of: peer))
        guard !trusted.isEmpty else { return current }
        let hops = forwardedFor(headers)
        for hop in hops.reversed() {
            guard let bytes = current.bytes, trusted.contains(where: { $0.contains(bytes) }) else { return current }
            current = ClientAddress(origin: .written(hop), bytes: IPRange.parse(hop))
        }
        return current
    }

    /// The peer's address bytes straight from its `sockaddr` (network order, as `IPRange` keeps
    /// them); nil for a Unix socket.
    static func bytes(of peer: SocketAddress) -> [UInt8]? {
        switch peer {
        case .v4(let address): withUnsafeBytes(of: address.address.sin_addr) { Array($0) }
        case .v6(let address): withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: nil
        }
    }

    /// The addresses of `X-Forwarded-For` (every such header, in order), or of `Forwarded`'s `for=`
    /// parameters when there is no `X-Forwarded-For`; ports and brackets removed.
    static func forwardedFor(_ headers: HTTPFields) -> [String] {
        let forwardedFor = headers[values: HTTPField.Name("X-Forwarded-For")!]
        if !forwardedFor.isEmpty {
            return forwardedFor.flatMap { $0.split(separator: ",") }.map { bare($0.trimmingCharacters(in: .whitespaces)) }
        }
        var hops: [String] = []
        for value in headers[values: HTTPField.Name("Forwarded")!] {
            for element in value.split(separator: ",") {
                for pair in element.split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "for" else { continue }
                    hops.append(bare(parts[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))))
                }
            }
        }
        return hops
    }

    /// `1.2.3.4:80` → `1.2.3.4`, `[2001:db8::1]:443` → `2001:db8::1`; anything else as it is.
    static func bare(_ text: String) -> String {
        if text.hasPrefix("["), let end = text.firstIndex(of: "]") { return String(text[text.index(after: text.startIndex)..<end]) }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") { return String(text[..<colon]) }
        return text
    }
}

import Foundation
