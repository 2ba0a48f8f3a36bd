import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import LuaRuntime
import MoonhookStore
import NIOCore
import ServiceLifecycle

/// Builds the whole server: Lua workers, the sources of the handlers folder, the dispatcher and the
/// HTTP routes, as one application whose services run in one `ServiceGroup`.
///
/// ```swift
/// let app = try await buildApplication(configuration: configuration, environment: ProcessInfo.processInfo.environment, logger: logger)
/// try await app.runService()   // SIGTERM/SIGINT: stop accepting, finish in-flight work, return
/// ```
public func buildApplication(
    configuration: ServerConfiguration,
    environment: [String: String],
    logger: Logger,
    configurationFile: String? = nil,
    watchTiming: HandlerWatcher.Timing = HandlerWatcher.Timing(),
    onServerRunning: (@Sendable (Int) async -> Void)? = nil
) async throws -> some ApplicationProtocol {
    // Before anything that needs closing is opened.
    let consoleTemplates = try ConsoleTemplates.library()
    let metrics = ServerMetrics()
    let live = LiveFeed()
    var storeOptions = configuration.deliveries.storeOptions
    storeOptions.metrics = metrics.store
    let store = try await StoreLocation(configuration.store).open(logger: logger, options: storeOptions)
    let client = HandlerRuntime.makeHTTPClient()
    let services = HostServices(
        logger: logger, limits: configuration.limits, store: store, httpClient: client, outbound: configuration.outbound, metrics: metrics, live: live)
    let pool: WorkerPool
    do {
        pool = try WorkerPool(count: configuration.workers, services: services)
    } catch {
        try? await client.shutdown()
        await store.close()
        throw error
    }
    let directory = SourceDirectory(SourceCatalog())
    // Made before the catalog loads, so that it notices every change made from then on.
    let watcher = HandlerWatcher(
        root: configuration.handlersFolder, pool: pool, directory: directory, environment: environment, logger: logger, timing: watchTiming,
        configuration: configurationFile.map { HandlerWatcher.ConfigurationWatch(file: $0, current: configuration) }, metrics: metrics)
    let catalog = await SourceCatalog.load(folder: configuration.handlersFolder, pool: pool, environment: environment)
    for problem in catalog.problems {
        logger.error("source not served", metadata: ["problem": "\(problem)"])
    }
    for (name, source) in catalog.sources.sorted(by: { $0.key < $1.key }) {
        if source.configuration.verifier.scheme == .none {
            logger.warning("source accepts webhooks without any verification (scheme: none)", metadata: ["source": "\(name)"])
        }
        logger.info("source ready", metadata: ["source": "\(name)", "handlers": "\(source.handlers.map(\.path).joined(separator: ","))"])
    }
    directory.start(with: catalog)
    for source in catalog.sources.values { metrics.prepare(source: source.name, handlers: source.handlers.map(\.path)) }
    let readiness = Readiness()
    readiness.handlersLoaded()
    let sources = directory
    let dispatcher = HandlerDispatcher(
        inbox: store, sources: sources, pool: pool, settings: configuration.deliveries, maxConcurrent: configuration.maxConcurrentInvocations,
        defaultTimeout: configuration.limits.wallClock, logger: logger, metrics: metrics, live: live)
    let refusals = RefusalLog(keep: configuration.refusals.keep)

    let router = Router(context: MoonhookRequestContext.self)
    router.get("/healthz") { _, _ in "ok\n" }
    router.get("/readyz") { _, _ in readiness.response() }
    HookController(
        sources: sources, inbox: store, dispatcher: dispatcher, settings: configuration.deliveries, maxBodyBytes: configuration.maxBodyBytes,
        metrics: metrics, live: live, refusals: refusals, refusalBodyBytes: configuration.refusals.bodyBytes, trustedProxies: configuration.trustedProxies,
        rateLimiter: SourceRateLimiter(), logger: logger
    ).addRoutes(to: router)
    let handlersFolder = URL(fileURLWithPath: configuration.handlersFolder)
    AdminController(token: configuration.adminToken, sources: sources, inbox: store, dispatcher: dispatcher, refusals: refusals, handlersFolder: handlersFolder)
        .addRoutes(to: router)
    MetricsController(metrics: metrics, token: BearerToken(token: configuration.adminToken, guarding: "/metrics")).addRoutes(to: router)
    let session = configuration.adminToken.map { ConsoleSession(adminToken: $0, ttl: configuration.console.sessionTTL) }
    LiveStreamController(feed: live, token: BearerToken(token: configuration.adminToken, guarding: "the live stream"), session: session).addRoutes(to: router)
    ConsoleController(
        session: session, library: consoleTemplates, sources: sources, inbox: store, dispatcher: dispatcher, refusals: refusals,
        refusalsKept: configuration.refusals.keep, handlersFolder: handlersFolder, instance: configuration.port == 0 ? ProcessInfo.processInfo.hostName : "\(ProcessInfo.processInfo.hostName):\(configuration.port)", logger: logger
    ).addRoutes(to: router)
    var extraServices: [any Service] = [
        MetricsSampler(metrics: metrics, store: store, sources: sources, pool: pool, interval: configuration.metrics.storeInterval, logger: logger)
    ]
    if let address = configuration.metrics.listen {
        // Its own listener, without authentication: for a loopback or private address.
        let metricsRouter = Router()
        MetricsController(metrics: metrics, token: nil).addRoutes(to: metricsRouter)
        extraServices.append(
            Application(
                router: metricsRouter, configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "moonhook"),
                logger: logger))
    }

    // Slow senders: a deadline on each request's head and body, Hummingbird's idle timeout
    // between requests, and a cap on open connections (further ones wait in the listen queue).
    let edge = configuration.server
    let http1 = HTTP1Channel.Configuration(
        additionalChannelHandlers: [RequestDeadlineHandler(headerTimeout: edge.headerTimeout, bodyTimeout: edge.bodyTimeout, logger: logger)],
        idleTimeout: TimeAmount(edge.idleTimeout))
    return Application(
        router: router,
        server: .http1(configuration: http1),
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: "moonhook",
            availableConnectionsDelegate: MaximumAvailableConnections(edge.maxConnections, logger: logger)),
        services: [
            store, RuntimeService(pool: pool, store: store, client: client, retention: configuration.deliveries.retention, logger: logger), dispatcher,
            watcher, ReadinessProbe(readiness: readiness, store: store, interval: .seconds(1), logger: logger),
        ] + extraServices,
        onServerRunning: { channel in await onServerRunning?(channel.localAddress?.port ?? 0) },
        logger: logger
    )
}

/// Owns the Lua workers for the life of the server: once a minute purges expired keys and deletes
/// finished deliveries older than the retention window; shuts the workers and the HTTP client down
/// after every service after it in the group (the dispatcher, the server) has stopped. The store,
/// listed before it, closes after it.
struct RuntimeService: Service {
    let pool: WorkerPool
    let store: any Store
    let client: HTTPClient
    let retention: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(60))
                guard !Task.isCancelled else { break }
                do {
                    let purged = try await store.purgeExpired()
                    if purged > 0 { logger.debug("expired keys purged", metadata: ["count": "\(purged)"]) }
                } catch {
                    logger.error("purging expired keys failed", metadata: ["error": "\(error)"])
                }
                do {
                    let cutoff = Date().addingTimeInterval(-Double(retention.totalMilliseconds) / 1000)
                    let pruned = try await store.purge(DeliveryFilter(until: cutoff), onlyFinished: true)
                    if pruned > 0 { logger.info("finished deliveries past retention deleted", metadata: ["count": "\(pruned)"]) }
                } catch {
                    logger.error("deleting old deliveries failed", metadata: ["error": "\(error)"])
                }
            }
        }
        pool.shutdown()
        try? await client.shutdown()
    }
}
