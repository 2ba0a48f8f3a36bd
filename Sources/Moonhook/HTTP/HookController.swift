import Foundation
import Hummingbird
import Logging
import WebhookVerification

/// `POST /hooks/{source}`: find the source, verify on the raw body, decode, hand over, answer 202.
struct HookController: Sendable {
    let sources: SourceDirectory
    let dispatcher: HandlerDispatcher
    let maxBodyBytes: Int
    let logger: Logger

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/hooks/:source") { request, context in
            try await receive(request, context: context)
        }
    }

    func receive(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let name = context.parameters.get("source") ?? ""
        do {
            return try await accept(request, sourceName: name)
        } catch let failure as HTTPFailure {
            logger.warning("webhook refused", metadata: ["source": "\(name)", "status": "\(failure.status.code)", "reason": "\(failure.message)"])
            throw failure
        }
    }

    private func accept(_ request: Request, sourceName: String) async throws -> Response {
        guard let source = sources.source(named: sourceName) else {
            throw HTTPFailure(.notFound, "unknown source '\(sourceName)'")
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            throw HTTPFailure(.contentTooLarge, "body of \(length) bytes exceeds the limit of \(maxBodyBytes) bytes")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBodyBytes)
        } catch {
            throw HTTPFailure(.contentTooLarge, "body exceeds the limit of \(maxBodyBytes) bytes")
        }
        let headers = request.headers.map { (name: $0.name.rawName, value: $0.value) }
        let webhook = WebhookRequest(headers: headers, body: Array(buffer: buffer))
        do {
            try source.verifier.verify(webhook, now: Date())
        } catch {
            throw HTTPFailure(.unauthorized, error.message)
        }
        let envelope = try Envelope.open(webhook, source: source)
        let handlers = source.handlers(for: envelope.type)
        let metadata: Logger.Metadata = ["source": "\(source.name)", "event.type": "\(envelope.type)", "delivery.id": "\(envelope.id)"]
        if handlers.isEmpty {
            logger.info("webhook accepted, no handler for its type (unhandled)", metadata: metadata)
        } else {
            // Repeated headers are joined with ", ", as HTTP allows.
            let lowercased = Dictionary(headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { "\($0), \($1)" })
            var delivery = Delivery(id: envelope.id, source: source.name, type: envelope.type, receivedAt: Date(), headers: lowercased, body: webhook.body, handlers: handlers)
            delivery.redactions = source.redactions
            guard dispatcher.submit(delivery) else { throw HTTPFailure(.serviceUnavailable, "shutting down") }
            logger.info("webhook accepted", metadata: metadata.merging(["handlers": "\(handlers.map(\.path).joined(separator: ","))"]) { $1 })
        }
        var body = ByteBuffer()
        body.writeString(#"{"status":"accepted","id":"# + jsonString(envelope.id) + #","type":"# + jsonString(envelope.type) + #","handlers":\#(handlers.count)}"#)
        return Response(status: .accepted, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
    }

    private func jsonString(_ text: String) -> String {
        var output: [UInt8] = []
        CanonicalJSON.writeString(text, to: &output)
        return String(decoding: output, as: UTF8.self)
    }
}
