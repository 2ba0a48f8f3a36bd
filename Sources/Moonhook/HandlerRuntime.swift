import AsyncHTTPClient
import Logging
import LuaRuntime
import MoonhookStore

/// What the host APIs need from the process: where to log, store and call out.
public struct HostServices: Sendable {
    public var logger: Logger
    public var limits: LuaLimits
    public var store: any KeyValueStore
    public var httpClient: HTTPClient
    public var outbound: OutboundPolicy
    /// Where kv and http calls are counted (nil: nowhere, as in `moonhook check`).
    public var metrics: ServerMetrics?
    /// Where handler log lines are shown as they are written (nil: nowhere).
    public var live: LiveFeed?

    public init(
        logger: Logger, limits: LuaLimits, store: any KeyValueStore, httpClient: HTTPClient, outbound: OutboundPolicy, metrics: ServerMetrics? = nil,
        live: LiveFeed? = nil
    ) {
        self.logger = logger
        self.metrics = metrics
        self.live = live
        self.limits = limits
        self.store = store
        self.httpClient = httpClient
        self.outbound = outbound
    }
}

/// Builds Lua workers with every host API of moonhook installed.
public enum HandlerRuntime {
    /// The host libraries every handler gets, one per API area.
    public static func libraries(_ services: HostServices) -> [LuaLibrary] {
        libraries(
            logger: services.logger, limits: services.limits, store: services.store, metrics: services.metrics, live: services.live,
            time: TimeAPI.library(), http: HTTPAPI.library(client: services.httpClient, policy: services.outbound, metrics: services.metrics))
    }

    /// The same libraries with `time` and `http` given (`moonhook test` freezes the one and
    /// answers the other itself), and `extra` ones after them.
    static func libraries(
        logger: Logger, limits: LuaLimits, store: any KeyValueStore, metrics: ServerMetrics? = nil, live: LiveFeed? = nil, time: LuaLibrary,
        http: LuaLibrary, extra: [LuaLibrary] = []
    ) -> [LuaLibrary] {
        LoadTimeAccess.apply(to: [
            LogAPI.library(
                logger: logger, linesPerSecond: limits.logLinesPerSecond, lineBytes: limits.logLineBytes, bytesPerInvocation: limits.logBytesPerInvocation,
                live: live),
            time,
            KVAPI.library(store: store, metrics: metrics),
            http,
        ] + CryptoAPI.libraries() + extra)
    }

    /// A worker with moonhook's host APIs.
    public static func makeWorker(_ services: HostServices, name: String = "lua-worker") throws(LuaError) -> LuaWorker {
        try LuaWorker(libraries: libraries(services), limits: services.limits, name: name)
    }

    /// The HTTP client handlers share: redirects are followed by `HTTPAPI` itself (each hop is
    /// checked against the outbound policy), so the client follows none.
    public static func makeHTTPClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(30)))
        configuration.httpVersion = .http1Only
        // A refused connection fails the call at once instead of being retried until the deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}
