import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// `GET /admin/stream?source=S&handler=PATH&level=LEVEL`: what happens on this instance as it
/// happens, as server-sent events (`delivery`, `attempt`, `log`; `dropped` when this reader fell
/// behind and lost events). Taken with the admin token (`Authorization: Bearer`) or a console
/// session cookie. Each instance streams its own events only: behind a load balancer, a reader
/// sees the instance it reached.
struct LiveStreamController: Sendable {
    let feed: LiveFeed
    let token: BearerToken
    let session: ConsoleSession?
    /// How often an idle stream sends a comment line.
    var heartbeat: Duration = .seconds(15)
    /// How long one write may wait for a reader that stopped reading before its connection is
    /// closed: a vanished client's connection is not kept for ever.
    var writeDeadline: TimeAmount = .seconds(60)

    func addRoutes(to router: Router<MoonhookRequestContext>) {
        router.get("/admin/stream") { request, context in
            try authorize(request)
            let filter = try Self.filter(FormValues(query: request))
            return stream(filter, channel: context.channel)
        }
    }

    private func authorize(_ request: Request) throws {
        if let session, request.headers[.authorization] == nil, session.session(of: request) != nil { return }
        try token.authorize(request)
    }

    static func filter(_ query: FormValues) throws -> LiveFilter {
        var filter = LiveFilter(source: query.value("source"), handler: query.value("handler"))
        if let text = query.value("level") {
            guard let level = Self.level(text) else { throw HTTPFailure(.badRequest, "level must be one of debug, info, warn, error") }
            filter.level = level
        }
        return filter
    }

    /// A level as handlers name it (`warn`) or as swift-log does (`warning`).
    static func level(_ text: String) -> Logger.Level? {
        text == "warn" ? .warning : Logger.Level(rawValue: text)
    }

    private func stream(_ filter: LiveFilter, channel: any Channel) -> Response {
        let feed = self.feed
        let heartbeat = self.heartbeat
        let writeDeadline = self.writeDeadline
        let body = ResponseBody { writer in
            let (queue, end) = feed.subscribe(filter)
            let beats = Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: heartbeat)
                    queue.heartbeat()
                }
            }
            defer {
                beats.cancel()
                end()
            }
            // Ends when the server shuts down gracefully: an open stream must not hold it up. A
            // reader that stopped reading holds its write, so its connection is closed a second
            // later if the stream has not ended by then.
            try await withGracefulShutdownHandler {
                try await writer.write(ByteBuffer(string: "retry: 2000\n: moonhook live stream\n\n"))
                while let batch = await queue.next() {
                    var buffer = ByteBuffer()
                    for frame in batch.frames { buffer.writeBytes(frame) }
                    if batch.dropped > 0 { buffer.writeString("event: dropped\ndata: {\"dropped\":\(batch.dropped)}\n\n") }
                    let stalled = channel.eventLoop.scheduleTask(in: writeDeadline) { channel.close(promise: nil) }
                    defer { stalled.cancel() }
                    try await writer.write(buffer)
                }
            } onGracefulShutdown: {
                queue.finish()
                channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body)
    }
}
