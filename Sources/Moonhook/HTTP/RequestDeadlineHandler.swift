import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose sender takes too long over a request: its head must arrive within
/// `headerTimeout` of the connection opening (or of the first bytes after a keep-alive pause), its
/// body within `bodyTimeout` of the head. These are totals, not gaps: Hummingbird's idle timeout is
/// reset by every request part, so a sender trickling a byte every few seconds never trips it.
/// The sender gets 408 where a response can still be sent (none has begun, none is owed for an
/// earlier pipelined request), then the connection closes.
///
/// Sits right after Hummingbird's HTTP/1 codec, so it sees whole request parts. A read that ends
/// while no request is open and every request is answered is the start of the next head: that is
/// how a keep-alive pause ends and the head's clock starts. Between requests, Hummingbird's own
/// idle timeout applies.
///
/// Used only on its channel's event loop, as every channel handler.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Phase {
        /// Waiting for the (rest of the) head of a request.
        case head
        /// The head arrived, its body has not ended.
        case body
        /// No request being read: it is being answered, or the connection is idle.
        case between
    }

    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount
    private let logger: Logger
    private var phase = Phase.between
    /// Requests whose head arrived and whose response has not ended.
    private var unanswered = 0
    /// A response head went out and its end has not.
    private var responding = false
    private var deadline: Scheduled<Void>?

    init(headerTimeout: Duration, bodyTimeout: Duration, logger: Logger) {
        self.headerTimeout = TimeAmount(headerTimeout)
        self.bodyTimeout = TimeAmount(bodyTimeout)
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(.head, context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if phase == .between, unanswered == 0 { start(.head, context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            start(.body, context: context)
        case .body:
            break
        case .end:
            stop()
            phase = .between
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Bytes arrived that made no whole head: a new request has begun.
        if phase == .between, unanswered == 0 { start(.head, context: context) }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            responding = true
        case .body:
            break
        case .end:
            responding = false
            unanswered = max(0, unanswered - 1)
        }
        context.write(data, promise: promise)
    }

    private func start(_ next: Phase, context: ChannelHandlerContext) {
        stop()
        phase = next
        let timeout = next == .head ? headerTimeout : bodyTimeout
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            expire(context: context)
        }
    }

    private func stop() {
        deadline?.cancel()
        deadline = nil
    }

    private func expire(context: ChannelHandlerContext) {
        deadline = nil
        guard phase != .between, context.channel.isActive else { return }
        let what = phase == .head ? "head" : "body"
        let limit = phase == .head ? headerTimeout : bodyTimeout
        logger.debug(
            "connection closed: request \(what) not received in time",
            metadata: ["remote": "\(context.channel.remoteAddress?.description ?? "?")", "timeout.ms": "\(limit.nanoseconds / 1_000_000)"])
        // A 408 may go out only if no response has begun and none is owed for an earlier request.
        guard !responding, unanswered == (phase == .body ? 1 : 0) else {
            context.close(promise: nil)
            return
        }
        phase = .between
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .requestTimeout, headerFields: [.connection: "close", .contentLength: "0"]))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
