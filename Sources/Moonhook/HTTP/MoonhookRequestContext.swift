import Hummingbird
import NIOCore

/// Hummingbird's request context plus the peer's address, which kept refusals record, and the
/// connection, which the live stream closes when its reader stops reading.
public struct MoonhookRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection's other end (a proxy's address, when there is one in front).
    public let remoteAddress: SocketAddress?
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }

    /// The peer's IP address as text (or the socket path), for logs and kept refusals.
    var peer: String? {
        guard let remoteAddress else { return nil }
        return remoteAddress.ipAddress ?? remoteAddress.pathname
    }
}
