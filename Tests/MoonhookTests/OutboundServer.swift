import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization

/// A real HTTP server on 127.0.0.1 standing in for the services handlers call: a chat webhook,
/// slow and huge answers, redirects.
final class OutboundServer: Sendable {
    struct Received: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: String
    }

    private let received = Mutex<[Received]>([])

    var requests: [Received] { received.withLock { $0 } }

    /// Runs `body` with the server listening; passes the port.
    func run<T: Sendable>(_ body: @Sendable @escaping (Int) async throws -> T) async throws -> T {
        let router = Router()
        router.get("/json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json", HTTPField.Name("X-Test")!: "yes"], body: .init(byteBuffer: ByteBuffer(string: #"{"ok":true,"n":42}"#)))
        }
        router.post("/echo") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            self.record(request, body)
            return Response(status: .created, headers: [.contentType: request.headers[.contentType] ?? "none"], body: .init(byteBuffer: body))
        }
        router.post("/chat") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            self.record(request, body)
            return "ok"
        }
        router.get("/slow") { _, _ in
            try await Task.sleep(for: .seconds(3))
            return "late"
        }
        router.get("/big") { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: 2 << 20)))
        }
        router.get("/redirect") { _, _ in Response(status: .found, headers: [.location: "/json"]) }
        router.get("/loop") { _, _ in Response(status: .found, headers: [.location: "/loop"]) }
        router.get("/elsewhere") { request, _ in
            Response(status: .temporaryRedirect, headers: [.location: request.uri.queryParameters.get("to") ?? "/json"])
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        return try await app.test(.live) { client in try await body(client.port!) }
    }

    private func record(_ request: Request, _ body: ByteBuffer) {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        received.withLock { $0.append(Received(method: request.method.rawValue, path: request.uri.path, headers: headers, body: String(buffer: body))) }
    }
}
