import HTTPTypes
import NIOCore

/// The address a request came from. Behind proxies listed in `trusted_proxies`, it is found in
/// `X-Forwarded-For` (or, without it, `Forwarded`), read from the right: each trusted proxy wrote
/// the address it received from, so the first entry that is not a trusted proxy is the client. The
/// leftmost entry is never taken on trust: the client writes it itself. An entry that is not an
/// address ends the walk and is the client (so that an allow-list refuses it).
struct ClientAddress: Sendable, CustomStringConvertible {
    /// The address as written, for logs and kept refusals.
    let text: String
    /// Its bytes (4 or 16), when it is an IP address.
    let bytes: [UInt8]?

    var description: String { text }

    static func resolve(peer: SocketAddress?, headers: HTTPFields, trusted: [IPRange]) -> ClientAddress? {
        guard let peer else { return nil }
        guard let peerText = peer.ipAddress else { return ClientAddress(text: peer.pathname ?? "unknown", bytes: nil) }
        var current = ClientAddress(text: peerText, bytes: IPRange.parse(peerText))
        guard !trusted.isEmpty else { return current }
        let hops = forwardedFor(headers)
        for hop in hops.reversed() {
            guard let bytes = current.bytes, trusted.contains(where: { $0.contains(bytes) }) else { return current }
            current = ClientAddress(text: hop, bytes: IPRange.parse(hop))
        }
        return current
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
