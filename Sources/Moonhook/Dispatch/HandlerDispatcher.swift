import Foundation
import Logging
import LuaRuntime
import MoonhookStore
import ServiceLifecycle
import Synchronization

/// Runs the handlers of accepted deliveries from the inbox. A `Service`: it claims due (delivery,
/// handler) pairs (new ones at once when the receiver wakes it, retries when their time comes,
/// and pairs whose process died once their lease runs out), runs each on the Lua workers, and
/// records done, retry (with backoff) or dead. At most `maxConcurrent` invocations run at once,
/// and each source and handler can be held to fewer, so one slow handler cannot take every slot.
///
/// Leases of the pairs it runs are renewed while they run; on graceful shutdown it stops claiming,
/// finishes every invocation it started, records them, then returns.
public final class HandlerDispatcher: Service, Sendable {
    private let inbox: any DeliveryInbox
    private let sources: SourceDirectory
    private let pool: WorkerPool
    private let settings: ServerConfiguration.DeliverySettings
    private let maxConcurrent: Int
    private let logger: Logger
    private let stream: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation
    private let state = Mutex(State())

    /// What the dispatcher has done so far.
    public struct Counters: Sendable, Equatable {
        public var succeeded = 0
        /// Failed attempts, whether retried later or dead-lettered.
        public var failed = 0
        public var deadLettered = 0
        public var inFlight = 0
    }

    private struct Key: Hashable {
        var delivery: Int64
        var handler: String
    }

    private struct State {
        var counters = Counters()
        /// Pairs this process runs now, with their attempt numbers: the leases to renew.
        var running: [Key: Int] = [:]
        var perSource: [String: Int] = [:]
        var perHandler: [String: Int] = [:]
        var claimed = 0
    }

    public init(inbox: any DeliveryInbox, sources: SourceDirectory, pool: WorkerPool, settings: ServerConfiguration.DeliverySettings, maxConcurrent: Int, logger: Logger) {
        self.inbox = inbox
        self.sources = sources
        self.pool = pool
        self.settings = settings
        self.maxConcurrent = max(1, maxConcurrent)
        self.logger = logger
        (stream, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Asks for a look at the inbox now (a delivery was stored, a slot came free).
    public func wake() {
        signal.yield(())
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.tick() }
            background.addTask { await self.renewLeases() }
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for await _ in stream {
                        for task in await claim() {
                            group.addTask {
                                await self.execute(task)
                                self.release(task)
                                self.wake()
                            }
                        }
                    }
                }
            } onGracefulShutdown: {
                self.signal.finish()
            }
            background.cancelAll()
        }
    }

    /// Wakes the claim loop every poll interval, for retries coming due and expired leases.
    private func tick() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.pollInterval)
            wake()
        }
    }

    /// Keeps the leases of running pairs alive, a third of the lease apart.
    private func renewLeases() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.lease / 3)
            let running = state.withLock { $0.running.map { (delivery: $0.key.delivery, handler: $0.key.handler, attempt: $0.value) } }
            if running.isEmpty { continue }
            do {
                try await inbox.renew(running, lease: settings.lease)
            } catch {
                logger.error("renewing leases failed", metadata: ["error": "\(error)", "pairs": "\(running.count)"])
            }
        }
    }

    /// Claims as many due pairs as there are free slots, within the per-source and per-handler
    /// limits. The slots are reserved while choosing, inside the claim's transaction.
    private func claim() async -> [InboxTask] {
        let free = maxConcurrent - state.withLock { $0.claimed }
        guard free > 0 else { return [] }
        let reservation = Reservation()
        let tasks: [InboxTask]
        do {
            tasks = try await inbox.claim(candidates: free, lease: settings.lease) { candidates in
                self.reserve(from: candidates, free: free, into: reservation)
            }
        } catch {
            logger.error("claiming deliveries failed", metadata: ["error": "\(error)"])
            tasks = []
        }
        // Give back what was reserved but not leased (a failed or repeated transaction).
        var unclaimed = reservation.chosen.withLock { $0 }
        for task in tasks {
            if let index = unclaimed.firstIndex(where: { $0.delivery == task.delivery.seq && $0.handler == task.handler }) {
                unclaimed.remove(at: index)
            }
        }
        state.withLock { state in
            for candidate in unclaimed { Self.unreserve(candidate, in: &state) }
            for task in tasks {
                state.running[Key(delivery: task.delivery.seq, handler: task.handler)] = task.attempt
                state.counters.inFlight += 1
            }
        }
        if !tasks.isEmpty { wake() }
        return tasks
    }

    private final class Reservation: Sendable {
        let chosen = Mutex<[TaskCandidate]>([])
    }

    private func reserve(from candidates: [TaskCandidate], free: Int, into reservation: Reservation) -> [TaskCandidate] {
        let catalog = sources.catalog
        return state.withLock { state in
            // A transaction run again calls this again: its earlier choice is given back first.
            for candidate in reservation.chosen.withLock({ $0 }) { Self.unreserve(candidate, in: &state) }
            var chosen: [TaskCandidate] = []
            for candidate in candidates where chosen.count < free && state.claimed < maxConcurrent {
                // Its lease ran out while this process still runs it (renewal fell behind): it is
                // not run a second time alongside.
                if state.running[Key(delivery: candidate.delivery, handler: candidate.handler)] != nil { continue }
                let source = catalog.sources[candidate.source]
                if let limit = source?.configuration.concurrency, state.perSource[candidate.source, default: 0] >= limit { continue }
                if let limit = source?.handlers.first(where: { $0.path == candidate.handler })?.options.concurrency,
                    state.perHandler[candidate.handler, default: 0] >= limit
                {
                    continue
                }
                state.perSource[candidate.source, default: 0] += 1
                state.perHandler[candidate.handler, default: 0] += 1
                state.claimed += 1
                chosen.append(candidate)
            }
            reservation.chosen.withLock { $0 = chosen }
            return chosen
        }
    }

    private static func unreserve(_ candidate: TaskCandidate, in state: inout State) {
        state.perSource[candidate.source, default: 1] -= 1
        state.perHandler[candidate.handler, default: 1] -= 1
        state.claimed -= 1
    }

    private func release(_ task: InboxTask) {
        state.withLock { state in
            Self.unreserve(TaskCandidate(delivery: task.delivery.seq, source: task.delivery.source, handler: task.handler), in: &state)
            state.running[Key(delivery: task.delivery.seq, handler: task.handler)] = nil
            state.counters.inFlight -= 1
        }
    }

    /// Runs a pair the caller claimed itself (a `respond: sync` delivery, stored already running)
    /// and records the outcome; a failure is dead-lettered at once, since the sender is answered
    /// with it and will resend. Returns the handler's outcome.
    public func runClaimed(_ task: InboxTask) async -> LuaOutcome {
        let key = Key(delivery: task.delivery.seq, handler: task.handler)
        state.withLock {
            $0.running[key] = task.attempt
            $0.counters.inFlight += 1
        }
        defer {
            state.withLock {
                $0.running[key] = nil
                $0.counters.inFlight -= 1
            }
        }
        return await attempt(task, retrying: false)
    }

    private func execute(_ task: InboxTask) async {
        if task.handler.isEmpty {
            await resolve(task)
        } else {
            _ = await attempt(task, retrying: true)
        }
    }

    /// A replay's marker: the delivery's handlers, as the source has them now, run again.
    private func resolve(_ task: InboxTask) async {
        let handlers = sources.source(named: task.delivery.source)?.handlers(for: task.delivery.type).map(\.path) ?? []
        await record("resolving handlers") { try await self.inbox.resolved(task, handlers: handlers) }
        logger.info(
            "delivery replayed",
            metadata: ["source": "\(task.delivery.source)", "delivery.id": "\(task.delivery.id)", "handlers": "\(handlers.joined(separator: ","))"])
    }

    private func attempt(_ task: InboxTask, retrying: Bool) async -> LuaOutcome {
        var logger = self.logger
        logger[metadataKey: "source"] = "\(task.delivery.source)"
        logger[metadataKey: "event.type"] = "\(task.delivery.type)"
        logger[metadataKey: "delivery.id"] = "\(task.delivery.id)"
        logger[metadataKey: "handler.path"] = "\(task.handler)"
        logger[metadataKey: "attempt"] = "\(task.attempt)"
        let source = sources.source(named: task.delivery.source)
        let started = Date()
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: LuaOutcome
        var lines: [String] = []
        if let source, let handler = source.handlers.first(where: { $0.path == task.handler }) {
            let context = HandlerContext(source: task.delivery.source, logger: logger, redactions: source.redactions)
            let event = HandlerEvent(task)
            outcome = await pool.invoke(handler, arguments: [event.luaValue], info: LuaInvocationInfo(handlerPath: handler.path, context: context))
            lines = context.logLines.map(Self.json)
        } else {
            let reason = source == nil ? "source '\(task.delivery.source)' is not served" : "handler \(task.handler) is not loaded"
            outcome = LuaOutcome(result: .failure(LuaError(.invalidHandler, reason)), instructions: 0)
        }
        let elapsed = clock.now - start
        let attemptRecord = AttemptRecord(startedAt: started, finishedAt: Date(), logs: lines)
        let result: InboxOutcome
        switch outcome.result {
        case .success:
            result = .done
            state.withLock { $0.counters.succeeded += 1 }
            logger.debug("handler succeeded", metadata: ["duration.ms": "\(elapsed.totalMilliseconds)"])
        case .failure(let error):
            var policy = source?.configuration.retry ?? RetryPolicy()
            if let options = source?.handlers.first(where: { $0.path == task.handler })?.options { policy = policy.overridden(by: options) }
            if retrying, let delay = policy.delay(afterFailure: task.failures + 1) {
                let at = Date().addingTimeInterval(Double(delay.totalMilliseconds) / 1000)
                result = .retry(at: at, error: error.message)
                state.withLock { $0.counters.failed += 1 }
                logger.error(
                    "handler failed, will retry",
                    metadata: ["error": "\(error.message)", "duration.ms": "\(elapsed.totalMilliseconds)", "retry.in.s": "\(delay.totalMilliseconds / 1000)"])
            } else {
                result = .dead(error: error.message)
                state.withLock {
                    $0.counters.failed += 1
                    $0.counters.deadLettered += 1
                }
                logger.error("handler failed, dead-lettered", metadata: ["error": "\(error.message)", "duration.ms": "\(elapsed.totalMilliseconds)"])
            }
        }
        let attemptLogger = logger
        await record("recording an attempt") {
            if try await self.inbox.finish(task, outcome: result, record: attemptRecord) == false {
                attemptLogger.warning("attempt not recorded: its lease ran out and the pair was claimed again")
            }
        }
        return outcome
    }

    /// Runs a write, trying again for a while if the database fails. If it never succeeds, the pair
    /// stays running in the inbox and runs again once its lease runs out.
    private func record(_ what: String, _ write: @Sendable () async throws -> Void) async {
        var delay = Duration.milliseconds(100)
        for attempt in 1...6 {
            do {
                try await write()
                return
            } catch {
                if attempt == 6 {
                    logger.error("\(what) failed; the pair runs again when its lease runs out", metadata: ["error": "\(error)"])
                    return
                }
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
    }

    /// A kept log line as a JSON object, for the attempt's record.
    private static func json(_ line: HandlerContext.LogLine) -> String {
        let object: [String: Any] = ["level": line.level.rawValue, "message": line.message, "fields": line.fields]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension HandlerEvent {
    /// The event of a stored delivery, for the attempt `task` is.
    init(_ task: InboxTask) {
        let delivery = task.delivery
        self.init(id: delivery.id, source: delivery.source, type: delivery.type, receivedAt: delivery.receivedAt, attempt: task.attempt, headers: delivery.headers, raw: delivery.body)
    }
}
