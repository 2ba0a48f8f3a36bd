import ArgumentParser
import Foundation
import Moonhook

/// Where the commands that ask a running server (`refusals`, `tail`) send their request: `--url`
/// or the configured listen address, with the admin token from `MOONHOOK_ADMIN_TOKEN` (or
/// `admin_token` in moonhook.yaml).
struct AdminEndpoint {
    let base: String
    let token: String

    init(url: String?, options: ServerOptions) throws {
        let configuration = try options.load(environment: ProcessInfo.processInfo.environment)
        guard let token = configuration.adminToken else {
            throw ValidationError("no admin token: set MOONHOOK_ADMIN_TOKEN (or admin_token in moonhook.yaml)")
        }
        let host = ["0.0.0.0", "::", ""].contains(configuration.host) ? "127.0.0.1" : configuration.host
        let base = url ?? "http://\(host.contains(":") ? "[\(host)]" : host):\(configuration.port)"
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.token = token
    }

    /// `path` on the server with `query` (nil values left out).
    func address(_ path: String, query: [(String, String?)] = []) throws -> String {
        var components = URLComponents(string: base + path)
        let items = query.compactMap { name, value in value.map { URLQueryItem(name: name, value: $0) } }
        if !items.isEmpty { components?.queryItems = items }
        guard let address = components?.string else { throw ValidationError("--url is not a URL: \(base)") }
        return address
    }
}
