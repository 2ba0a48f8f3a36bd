import Foundation

/// A `postgres://user:password@host:port/database?sslmode=…` store URL, taken apart as libpq does:
/// user and password percent-decoded, port 5432 and database named after the user by default.
public struct PostgresURL: Sendable, Equatable {
    /// How the connection is encrypted, as libpq's `sslmode` says it.
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Plain text.
        case disable
        /// TLS when the server offers it, plain text otherwise; the certificate is not checked.
        case prefer
        /// TLS or no connection; the certificate is not checked (libpq's `require`).
        case require
        /// TLS with the certificate checked against the system's trusted roots and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// - Throws: `StoreError(.configuration)` naming what is wrong, never the password.
    public init(_ text: String) throws(StoreError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql" else {
            throw StoreError(.configuration, "not a postgres:// URL (a password with reserved characters must be percent-encoded)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw StoreError(.configuration, "the postgres:// URL names no host")
        }
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw StoreError(.configuration, "the postgres:// URL's port \(port) is out of range") }
        let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? ""
        self.user = user.isEmpty ? "postgres" : user
        self.password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = components.percentEncodedPath.dropFirst().removingPercentEncoding ?? ""
        self.database = path.isEmpty ? self.user : path
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = TLSMode(rawValue: value) else {
                    let known = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw StoreError(.configuration, "sslmode must be one of \(known), got '\(item.value ?? "")'")
                }
                tls = mode
            case "application_name", "connect_timeout":
                continue
            default:
                throw StoreError(.configuration, "the postgres:// URL has an unknown parameter '\(item.name)' (known: sslmode)")
            }
        }
        self.tls = tls
    }

    /// The URL for logs and messages: everything but the password.
    public var redacted: String {
        let authority = password == nil ? user : "\(user):***"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(authority)@\(hostPart):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }
}
