import Logging
import LuaRuntime
import ServiceLifecycle
import Synchronization

/// Runs the handlers of accepted deliveries in the background, at most `maxConcurrent` invocations
/// at a time. A `Service`: on graceful shutdown it stops taking deliveries, finishes every one it
/// has taken, then returns.
public final class HandlerDispatcher: Service, Sendable {
    private let pool: WorkerPool
    private let logger: Logger
    private let maxConcurrent: Int
    private let stream: AsyncStream<Delivery>
    private let input: AsyncStream<Delivery>.Continuation
    private let tally = Mutex(Counters())

    /// What the dispatcher has done so far.
    public struct Counters: Sendable, Equatable {
        public var succeeded = 0
        public var failed = 0
        public var inFlight = 0
    }

    public init(pool: WorkerPool, maxConcurrent: Int, logger: Logger) {
        self.pool = pool
        self.maxConcurrent = max(1, maxConcurrent)
        self.logger = logger
        (stream, input) = AsyncStream.makeStream(of: Delivery.self)
    }

    public var counters: Counters { tally.withLock { $0 } }

    /// Hands a delivery over. Returns false once the dispatcher is shutting down.
    @discardableResult
    public func submit(_ delivery: Delivery) -> Bool {
        if case .enqueued = input.yield(delivery) { return true }
        return false
    }

    public func run() async throws {
        let limit = ConcurrencyLimit(maxConcurrent)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await delivery in stream {
                    for handler in delivery.handlers {
                        await limit.acquire()
                        group.addTask {
                            await self.invoke(handler, for: delivery)
                            limit.release()
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.input.finish()
        }
    }

    private func invoke(_ handler: LoadedHandler, for delivery: Delivery) async {
        tally.withLock { $0.inFlight += 1 }
        var logger = self.logger
        logger[metadataKey: "source"] = "\(delivery.source)"
        logger[metadataKey: "event.type"] = "\(delivery.type)"
        logger[metadataKey: "delivery.id"] = "\(delivery.id)"
        logger[metadataKey: "handler.path"] = "\(handler.path)"
        let context = HandlerContext(source: delivery.source, logger: logger, redactions: delivery.redactions)
        let clock = ContinuousClock()
        let started = clock.now
        let outcome = await pool.invoke(handler, arguments: [delivery.event(attempt: 1).luaValue], info: LuaInvocationInfo(handlerPath: handler.path, context: context))
        let elapsed = clock.now - started
        switch outcome.result {
        case .success:
            tally.withLock {
                $0.inFlight -= 1
                $0.succeeded += 1
            }
            logger.debug("handler succeeded", metadata: ["duration.ms": "\(elapsed.totalMilliseconds)"])
        case .failure(let error):
            tally.withLock {
                $0.inFlight -= 1
                $0.failed += 1
            }
            logger.error("handler failed", metadata: ["error": "\(error.message)", "duration.ms": "\(elapsed.totalMilliseconds)"])
        }
    }
}
