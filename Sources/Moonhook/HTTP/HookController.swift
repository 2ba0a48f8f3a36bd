import Foundation
import Hummingbird
import Logging
import LuaRuntime
import MoonhookStore
import NIOCore
import WebhookVerification

/// `POST /hooks/{source}`: find the source, verify on the raw body, decode, store durably in the
/// inbox, answer 202 (200 for a duplicate). For a `respond: sync` source, the handlers run before
/// the answer and the first one's return value is the answer; such a source also takes
/// `GET /hooks/{source}` (a subscription handshake) as an event of type `get`.
struct HookController: Sendable {
    let sources: SourceDirectory
    let inbox: any DeliveryInbox
    let dispatcher: HandlerDispatcher
    let settings: ServerConfiguration.DeliverySettings
    let maxBodyBytes: Int
    let metrics: ServerMetrics
    /// Where accepted deliveries are shown as they arrive (the live stream).
    let live: LiveFeed
    let refusals: RefusalLog
    /// Bytes of a refused request's body kept with it.
    let refusalBodyBytes: Int
    /// Proxies whose forwarding headers name the client (`ClientAddress`).
    let trustedProxies: [IPRange]
    /// The sources' `rate_limit` buckets.
    let rateLimiter: SourceRateLimiter
    let logger: Logger

    func addRoutes(to router: Router<MoonhookRequestContext>) {
        router.post("/hooks/:source") { request, context in
            try await receive(request, context: context)
        }
        router.get("/hooks/:source") { request, context in
            try await receiveQuery(request, context: context)
        }
    }

    func receive(_ request: Request, context: MoonhookRequestContext) async throws -> Response {
        let name = context.parameters.get("source") ?? ""
        let body = ReceivedBody()
        let client = ClientAddress.resolve(peer: context.remoteAddress, headers: request.headers, trusted: trustedProxies)
        return try await observing(request, client: client, source: name, body: body) { try await accept(request, sourceName: name, client: client, body: body) }
    }

    /// Runs `answer`, then counts the request; a refusal it throws is also counted by reason, kept
    /// (`GET /admin/refusals`) and logged with its one-line reason on the way out.
    private func observing(
        _ request: Request, client: ClientAddress?, source name: String, body: ReceivedBody, _ answer: () async throws -> Response
    ) async throws -> Response {
        do {
            let response = try await answer()
            metrics.request(source: name, status: response.status.code, bytes: body.bytes?.count ?? 0)
            return response
        } catch let failure as HTTPFailure {
            let source = sources.source(named: name)
            let label = source == nil ? ServerMetrics.unknownSource : name
            let size = body.bytes?.count ?? request.headers[.contentLength].flatMap { Int($0) } ?? 0
            metrics.request(source: label, status: failure.status.code, bytes: body.bytes?.count ?? 0)
            metrics.refusal(source: label, reason: failure.reason)
            refusals.add(
                Refusal(
                    time: Date(), source: label, status: failure.status.code, reason: failure.reason, message: failure.message, remoteAddress: client?.text,
                    headerNames: request.headers.map { $0.name.canonicalName }, bodyBytes: size, body: body.bytes ?? [], bodyLimit: refusalBodyBytes,
                    secrets: source?.secrets ?? []))
            logger.warning(
                "webhook refused",
                metadata: [
                    "source": "\(name)", "status": "\(failure.status.code)", "reason": "\(failure.message)", "refusal": "\(failure.reason.rawValue)",
                    "client": "\(client?.text ?? "unknown")",
                ])
            throw failure
        }
    }

    /// Request headers by lower-cased name; repeated headers are joined with ", ", as HTTP allows.
    /// A console session cookie (sent along when an operator's browser opens a hook's URL) is
    /// left out: it must reach neither the store nor a handler.
    static func lowercased(_ headers: [(name: String, value: String)]) -> [String: String] {
        var stored = Dictionary(headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { "\($0), \($1)" })
        if let cookie = stored["cookie"], cookie.contains(ConsoleSession.cookieName) {
            let kept = cookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.hasPrefix(ConsoleSession.cookieName + "=") }
            stored["cookie"] = kept.isEmpty ? nil : kept.joined(separator: "; ")
        }
        return stored
    }

    private func accept(_ request: Request, sourceName: String, client: ClientAddress?, body received: ReceivedBody) async throws -> Response {
        guard let source = sources.source(named: sourceName) else {
            throw HTTPFailure(.notFound, "unknown source '\(sourceName)'")
        }
        try checkAllowed(client, source: source)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            throw HTTPFailure(.contentTooLarge, "body of \(length) bytes exceeds the limit of \(maxBodyBytes) bytes")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw HTTPFailure(.contentTooLarge, "body exceeds the limit of \(maxBodyBytes) bytes")
        } catch {
            // The connection ended mid-body: the sender went away, or took longer than body_timeout.
            throw HTTPFailure(.badRequest, "body not received in full: \(error)")
        }
        let headers = request.headers.map { (name: $0.name.rawName, value: $0.value) }
        let webhook = WebhookRequest(headers: headers, body: Array(buffer: buffer), query: request.uri.query ?? "")
        received.bytes = webhook.body
        let format = try Envelope.format(of: webhook, scheme: source.configuration.verifier.scheme)
        do {
            try source.verifier.verify(webhook, now: Date())
        } catch {
            let reason: RefusalReason =
                switch error.reason {
                case .timestampOutOfTolerance: .timestamp
                case .undecodableBody: .body
                default: .signature
                }
            throw HTTPFailure(.unauthorized, error.message, reason: reason)
        }
        let envelope = try Envelope.open(webhook, format: format, source: source)
        try checkRate(source)
        let handlers = source.handlers(for: envelope.type)
        let delivery = InboxDelivery(
            source: source.name, id: envelope.id, type: envelope.type, receivedAt: Date(), headers: Self.lowercased(headers), body: webhook.body,
            handlers: handlers.map(\.path), orderingKeys: envelope.orderingKeys.filter { key, _ in handlers.contains { $0.path == key } })
        return try await deliver(delivery, source: source, handlers: handlers)
    }

    /// `GET /hooks/{source}` for a `respond: sync` source: the query parameters become the body of
    /// an event of type `get`. Nothing is signed in such a request; the handler checks the token
    /// the sender echoes (such as `hub.verify_token`) against a secret.
    func receiveQuery(_ request: Request, context: MoonhookRequestContext) async throws -> Response {
        let name = context.parameters.get("source") ?? ""
        let client = ClientAddress.resolve(peer: context.remoteAddress, headers: request.headers, trusted: trustedProxies)
        return try await observing(request, client: client, source: name, body: ReceivedBody()) {
            guard let source = sources.source(named: name) else { throw HTTPFailure(.notFound, "unknown source '\(name)'") }
            try checkAllowed(client, source: source)
            guard source.configuration.respondsSynchronously else {
                throw HTTPFailure(.methodNotAllowed, "source '\(name)' takes GET only with respond: sync in its source.yaml")
            }
            var query: [String: LuaValue] = [:]
            for (key, value) in request.uri.queryParameters { query[String(key)] = .string(String(value)) }
            let body = try HandlerResponse.json(.table(array: [], fields: query))
            let headers = request.headers.map { (name: $0.name.rawName, value: $0.value) }
            try checkRate(source)
            let handlers = source.handlers(for: "get")
            let delivery = InboxDelivery(
                source: source.name, id: UUID().uuidString.lowercased(), type: "get", receivedAt: Date(), headers: Self.lowercased(headers), body: body,
                handlers: handlers.map(\.path))
            return try await deliver(delivery, source: source, handlers: handlers)
        }
    }

    /// `allow_from`: 403 unless the client's address is in one of the source's ranges.
    private func checkAllowed(_ client: ClientAddress?, source: Source) throws {
        guard let ranges = source.configuration.allowFrom else { return }
        guard let bytes = client?.bytes, ranges.contains(where: { $0.contains(bytes) }) else {
            throw HTTPFailure(.forbidden, "address \(client?.text ?? "unknown") is not in the source's allow_from", reason: .address)
        }
    }

    /// `rate_limit`: 429 with `Retry-After` (whole seconds, at least 1) once the bucket is empty.
    private func checkRate(_ source: Source) throws {
        guard let limit = source.configuration.rateLimit, let wait = rateLimiter.admit(source: source.name, limit: limit) else { return }
        let seconds = max(1, Int((Double(wait.totalNanoseconds) / 1e9).rounded(.up)))
        throw HTTPFailure(
            .tooManyRequests, "past the source's rate limit of \(limit.rate) (burst \(limit.burst)); retry in \(seconds) s",
            headers: [.retryAfter: "\(seconds)"], reason: .rate)
    }

    /// Stores a verified delivery, then answers: at once (202), or, for a `respond: sync` source,
    /// with what its handlers return.
    private func deliver(_ delivery: InboxDelivery, source: Source, handlers: [LoadedHandler]) async throws -> Response {
        let metadata: Logger.Metadata = ["source": "\(delivery.source)", "event.type": "\(delivery.type)", "delivery.id": "\(delivery.id)"]
        let synchronous = source.configuration.respondsSynchronously && !delivery.handlers.isEmpty
        // With room in the dispatcher, the delivery is stored claimed and handed over at once.
        // A pair with an ordering key or a rate waits its turn in the inbox: never handed over at once.
        let waits = !delivery.orderingKeys.isEmpty || handlers.contains { $0.startInterval != nil }
        let reservation = synchronous || waits ? nil : dispatcher.reserve(source: source, handlers: handlers)
        let result: AppendResult
        do {
            result = try await inbox.append(delivery, retention: settings.retention, claimed: synchronous || reservation != nil, lease: settings.lease)
        } catch {
            reservation?.cancel()
            logger.error("webhook not stored", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            throw HTTPFailure(.serviceUnavailable, "cannot store the delivery: \(error)")
        }
        let seq: Int64
        switch result {
        case .duplicate(let first, let receivedAt):
            reservation?.cancel()
            logger.info("duplicate delivery, not run again", metadata: metadata.merging(["first.seq": "\(first)"]) { $1 })
            return json(.ok, #"{"status":"duplicate","id":"# + CanonicalJSON.quoted(delivery.id) + #","first_received_at":"# + CanonicalJSON.quoted(TimeAPI.iso8601(receivedAt)) + "}")
        case .accepted(let stored):
            seq = stored
        }
        live.publish(LiveEvent.accepted(delivery, seq: seq))
        if delivery.handlers.isEmpty {
            logger.info("webhook accepted, no handler for its type (unhandled)", metadata: metadata)
        } else if synchronous {
            return try await respond(delivery, seq: seq, source: source, handlers: handlers, metadata: metadata)
        } else {
            if let reservation {
                var stored = delivery
                stored.seq = seq
                reservation.start(delivery.handlers.map { ClaimedPair(delivery: stored, handler: $0, attempt: 1, failures: 0) })
            } else {
                dispatcher.wake()
            }
            logger.info("webhook accepted", metadata: metadata.merging(["handlers": "\(delivery.handlers.joined(separator: ","))"]) { $1 })
        }
        return json(
            .accepted,
            #"{"status":"accepted","id":"# + CanonicalJSON.quoted(delivery.id) + #","type":"# + CanonicalJSON.quoted(delivery.type) + #","handlers":\#(delivery.handlers.count)}"#)
    }

    /// Runs a `respond: sync` delivery's handlers (stored as already claimed), each once a slot is
    /// free within the concurrency limits, and answers with the first one's return value. A failure
    /// answers 500, and no slot within a handler's timeout 503 with `Retry-After`; either gives the
    /// delivery id back, so that the sender's retry is run rather than taken for a duplicate.
    private func respond(
        _ delivery: InboxDelivery, seq: Int64, source: Source, handlers: [LoadedHandler], metadata: Logger.Metadata
    ) async throws -> Response {
        var stored = delivery
        stored.seq = seq
        var answer: LuaValue?
        var failure: HTTPFailure?
        var busy = false
        let pairs = handlers.map { ClaimedPair(delivery: stored, handler: $0.path, attempt: 1, failures: 0) }
        dispatcher.hold(pairs)
        defer { dispatcher.letGo(pairs) }
        for (handler, pair) in zip(handlers, pairs) {
            // Once one had no slot, the rest are not run either: the sender is told to come back.
            if busy {
                await dispatcher.drop(pair, error: "not run: an earlier handler of this respond: sync delivery had no free slot")
                continue
            }
            switch await dispatcher.runSynchronously(pair, source: source, handler: handler) {
            case .finished(let outcome):
                switch outcome.result {
                case .success(let values):
                    if answer == nil { answer = values.first ?? .nil }
                case .failure(let error):
                    failure = failure ?? HTTPFailure(.internalServerError, "handler failed: \(error.message)")
                }
            case .keyBusy(let timeout, let behind):
                busy = true
                failure = failure ?? Self.busy(handler, "delivery \(behind) of the same serial key did not finish within", timeout)
            case .rateBusy(let timeout):
                busy = true
                failure = failure ?? Self.busy(handler, "its max_rate lets it start no sooner than past", timeout)
            case .noSlot(let timeout):
                busy = true
                failure = failure ?? Self.busy(handler, "no free slot within", timeout)
            }
        }
        if let failure {
            do {
                try await inbox.forget(seq)
            } catch {
                logger.error("could not release the delivery id of a failed synchronous delivery", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
            throw failure
        }
        logger.info("webhook answered by its handler", metadata: metadata)
        return try HandlerResponse.make(from: answer)
    }

    /// 503 for a synchronous handler that could not run within its timeout, with `Retry-After`
    /// (the timeout in whole seconds, at least 1): "handler PATH is busy: WHY its N ms timeout".
    private static func busy(_ handler: LoadedHandler, _ why: String, _ timeout: Duration) -> HTTPFailure {
        let seconds = max(1, (timeout.totalMilliseconds + 999) / 1000)
        return HTTPFailure(
            .serviceUnavailable, "handler \(handler.path) is busy: \(why) its \(timeout.totalMilliseconds) ms timeout",
            headers: [.retryAfter: "\(seconds)"], reason: .busy)
    }

    private func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// The body of a request once read: what a refusal keeps of it.
final class ReceivedBody {
    var bytes: [UInt8]?
}
