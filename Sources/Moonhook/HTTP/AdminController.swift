import Foundation
import Hummingbird
import WebhookVerification

/// `/admin`, behind `Authorization: Bearer <admin_token>`. Off (404) when no token is configured.
struct AdminController: Sendable {
    let token: String?
    let sources: SourceDirectory

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/admin/handlers") { request, _ in
            try authorize(request)
            return handlers()
        }
    }

    private func authorize(_ request: Request) throws {
        guard let token else { throw HTTPFailure(.notFound, "the admin API is off (set admin_token)") }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            Digest.constantTimeEquals(Array(header.dropFirst(7).utf8), Array(token.utf8))
        else { throw HTTPFailure(.unauthorized, "admin API needs Authorization: Bearer <admin_token>") }
    }

    /// Every source folder: its version, when it was loaded, its handlers and its problems.
    private func handlers() -> Response {
        let catalog = sources.catalog
        let status = sources.status
        var entries: [[String: Any]] = []
        for name in Set(status.keys).union(catalog.sources.keys).sorted() {
            var entry: [String: Any] = ["source": name, "serving": catalog.sources[name] != nil]
            if let state = status[name] {
                entry["version"] = state.version
                entry["loaded_at"] = state.loadedAt.map { $0.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) } ?? NSNull()
                entry["problems"] = state.problems.map(\.description)
            }
            if let source = catalog.sources[name] {
                entry["scheme"] = source.configuration.verifier.scheme.rawValue
                entry["handlers"] = source.handlers.map { handler -> [String: Any] in
                    ["path": handler.path, "on": handler.options.on]
                }
            }
            entries.append(entry)
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["sources": entries], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
