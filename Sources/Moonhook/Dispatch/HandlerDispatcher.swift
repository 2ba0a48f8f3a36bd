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
/// A delivery the receiver stores while there is room is stored already claimed and handed over
/// directly (`reserve`, then `start`), so the common path costs no claim transaction. Leases of the
/// pairs it runs are renewed while they run; on graceful shutdown it stops claiming, finishes every
/// invocation it started, records them, then returns.
public final class HandlerDispatcher: Service, Sendable {
    let inbox: any DeliveryInbox
    private let sources: SourceDirectory
    private let pool: WorkerPool
    private let settings: ServerConfiguration.DeliverySettings
    /// A handler's wall-clock limit when it sets no `timeout`.
    let defaultTimeout: Duration
    private let logger: Logger
    private let stream: AsyncStream<Signal>
    private let signal: AsyncStream<Signal>.Continuation
    let state: Mutex<State>
    /// A wake is queued and not yet acted on: further wakes add nothing.
    private let wakeQueued = Atomic(false)
    /// Pairs may be waiting in the inbox for a free slot: a finished invocation should look.
    private let backlog = Atomic(true)

    private enum Signal {
        case wake
        case start([InboxTask])
    }

    /// What the dispatcher has done so far.
    public struct Counters: Sendable, Equatable {
        public var succeeded = 0
        /// Failed attempts, whether retried later or dead-lettered.
        public var failed = 0
        public var deadLettered = 0
        public var inFlight = 0
    }

    struct Key: Hashable {
        var delivery: Int64
        var handler: String
    }

    struct State {
        var counters = Counters()
        /// Pairs this process runs now, with their attempt numbers: the leases to renew.
        var running: [Key: Int] = [:]
        /// A waiting synchronous delivery is woken with whether it got its slot.
        var slots: ConcurrencySlots<CheckedContinuation<Bool, Never>>
    }

    public init(
        inbox: any DeliveryInbox, sources: SourceDirectory, pool: WorkerPool, settings: ServerConfiguration.DeliverySettings, maxConcurrent: Int,
        defaultTimeout: Duration, logger: Logger
    ) {
        self.inbox = inbox
        self.sources = sources
        self.pool = pool
        self.settings = settings
        self.state = Mutex(State(slots: ConcurrencySlots(maxConcurrent: maxConcurrent)))
        self.defaultTimeout = defaultTimeout
        self.logger = logger
        (stream, signal) = AsyncStream.makeStream(of: Signal.self)
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Asks for a look at the inbox now (a delivery was stored unclaimed, a replay was made).
    public func wake() {
        backlog.store(true, ordering: .relaxed)
        poke()
    }

    private func poke() {
        if !wakeQueued.exchange(true, ordering: .acquiringAndReleasing) { signal.yield(.wake) }
    }

    /// Reserves a slot for each of `handlers` of a delivery from `source` about to be stored, if
    /// all fit within the limits now; the caller then stores it claimed and calls `start`, or gives
    /// the slots back with `cancel`. Takes the source and handlers the receiver resolved, so that
    /// a request costs no catalog lookup here.
    public func reserve(source: Source, handlers: [LoadedHandler]) -> Bool {
        state.withLock { state in
            var trial = state.slots
            for handler in handlers {
                guard trial.take(source: source.name, handler: handler.path, limits: Self.limits(source, handler)) else { return false }
            }
            state.slots = trial
            return true
        }
    }

    /// Gives back what `reserve` took, for a delivery that was not stored (or was a duplicate).
    public func cancel(source: String, handlers: [String]) {
        let granted = state.withLock { state in handlers.flatMap { state.slots.give(source: source, handler: $0) } }
        Self.wake(granted)
    }

    static func limits(_ source: Source?, _ handler: LoadedHandler?) -> ConcurrencySlots<CheckedContinuation<Bool, Never>>.Limits {
        ConcurrencySlots.Limits(source: source?.configuration.concurrency, handler: handler?.options.concurrency)
    }

    /// Tells waiting synchronous deliveries that they hold a slot now. Called outside the lock.
    static func wake(_ granted: [CheckedContinuation<Bool, Never>]) {
        for waiter in granted { waiter.resume(returning: true) }
    }

    /// Runs pairs stored already claimed (attempt 1) in slots `reserve` gave.
    public func start(_ tasks: [InboxTask]) {
        state.withLock { state in
            for task in tasks { Self.track(task, in: &state) }
        }
        if case .terminated = signal.yield(.start(tasks)) {
            // Shutting down already: they run, here or elsewhere, once their lease runs out.
            for task in tasks { release(task) }
        }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.tick() }
            background.addTask { await self.renewLeases() }
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for await signal in stream {
                        let tasks: [InboxTask]
                        switch signal {
                        case .wake:
                            wakeQueued.store(false, ordering: .releasing)
                            tasks = await claim()
                        case .start(let started):
                            tasks = started
                        }
                        for task in tasks {
                            group.addTask {
                                await self.execute(task)
                                self.release(task)
                                if self.backlog.load(ordering: .relaxed) { self.poke() }
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
            poke()
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
        let free = state.withLock { $0.slots.free }
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
        let granted = state.withLock { state in
            for task in tasks { Self.track(task, in: &state) }
            return unclaimed.flatMap { state.slots.give(source: $0.source, handler: $0.handler) }
        }
        Self.wake(granted)
        // Fewer than there was room for: nothing more is due now (retries come with the tick).
        if tasks.count < free { backlog.store(false, ordering: .relaxed) } else { poke() }
        return tasks
    }

    private final class Reservation: Sendable {
        let chosen = Mutex<[TaskCandidate]>([])
    }

    private func reserve(from candidates: [TaskCandidate], free: Int, into reservation: Reservation) -> [TaskCandidate] {
        let catalog = sources.catalog
        let (chosen, granted) = state.withLock { state in
            // A transaction run again calls this again: its earlier choice is given back first.
            let granted = reservation.chosen.withLock({ $0 }).flatMap { state.slots.give(source: $0.source, handler: $0.handler) }
            var chosen: [TaskCandidate] = []
            for candidate in candidates where chosen.count < free {
                // Its lease ran out while this process still runs it (renewal fell behind): it is
                // not run a second time alongside.
                if state.running[Key(delivery: candidate.delivery, handler: candidate.handler)] != nil { continue }
                let source = catalog.sources[candidate.source]
                let limits = Self.limits(source, source?.handler(at: candidate.handler))
                if state.slots.take(source: candidate.source, handler: candidate.handler, limits: limits) { chosen.append(candidate) }
            }
            reservation.chosen.withLock { $0 = chosen }
            return (chosen, granted)
        }
        Self.wake(granted)
        return chosen
    }

    /// Counts a pair as running here: its lease is renewed until `untrack`.
    static func track(_ task: InboxTask, in state: inout State) {
        state.running[Key(delivery: task.delivery.seq, handler: task.handler)] = task.attempt
        state.counters.inFlight += 1
    }

    static func untrack(_ task: InboxTask, in state: inout State) {
        state.running[Key(delivery: task.delivery.seq, handler: task.handler)] = nil
        state.counters.inFlight -= 1
    }

    /// Ends a pair run in a reserved slot: the slot and the lease go.
    func release(_ task: InboxTask) {
        let granted = state.withLock { state in
            Self.untrack(task, in: &state)
            return state.slots.give(source: task.delivery.source, handler: task.handler)
        }
        Self.wake(granted)
    }

    private func execute(_ task: InboxTask) async {
        if task.handler.isEmpty {
            await resolve(task)
        } else if task.abandoned, Self.retryPolicy(sources.source(named: task.delivery.source), task.handler).delay(afterFailure: task.failures) == nil {
            // Its attempts keep ending with their process (a crash, a kill, an OOM): running it
            // again would take this process down too.
            let error = "attempt \(task.attempt - 1) did not finish: the process running it ended, and that used up the pair's retries; dead-lettered without running it again"
            logger.error("handler dead-lettered", metadata: ["delivery.id": "\(task.delivery.id)", "handler.path": "\(task.handler)", "error": "\(error)"])
            state.withLock { $0.counters.deadLettered += 1 }
            await drop(task, error: error)
        } else {
            _ = await attempt(task, retrying: true)
        }
    }

    /// The retry policy of a pair: its source's, with its handler's own options over it.
    private static func retryPolicy(_ source: Source?, _ handlerPath: String) -> RetryPolicy {
        var policy = source?.configuration.retry ?? RetryPolicy()
        if let options = source?.handler(at: handlerPath)?.options { policy = policy.overridden(by: options) }
        return policy
    }

    /// A replay's marker: the delivery's handlers, as the source has them now, run again.
    private func resolve(_ task: InboxTask) async {
        let handlers = sources.source(named: task.delivery.source)?.handlers(for: task.delivery.type).map(\.path) ?? []
        await record("resolving handlers") { try await self.inbox.resolved(task, handlers: handlers) }
        logger.info(
            "delivery replayed",
            metadata: ["source": "\(task.delivery.source)", "delivery.id": "\(task.delivery.id)", "handlers": "\(handlers.joined(separator: ","))"])
    }

    func attempt(_ task: InboxTask, retrying: Bool, timeout: Duration? = nil) async -> LuaOutcome {
        var logger = self.logger
        logger[metadataKey: "source"] = "\(task.delivery.source)"
        logger[metadataKey: "event.type"] = "\(task.delivery.type)"
        logger[metadataKey: "delivery.id"] = "\(task.delivery.id)"
        logger[metadataKey: "handler.path"] = "\(task.handler)"
        logger[metadataKey: "attempt"] = "\(task.attempt)"
        let source = sources.source(named: task.delivery.source)
        let handler = source?.handler(at: task.handler)
        let started = Date()
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: LuaOutcome
        var lines: [String] = []
        if let source, let handler {
            let context = HandlerContext(source: task.delivery.source, logger: logger, redactions: source.redactions)
            let event = HandlerEvent(task, formJSON: source.configuration.formJSON)
            outcome = await pool.invoke(handler, arguments: [event.luaValue], info: LuaInvocationInfo(handlerPath: handler.path, context: context), timeout: timeout)
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
            if retrying, let delay = Self.retryPolicy(source, task.handler).delay(afterFailure: task.failures + 1) {
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
    func record(_ what: String, _ write: @Sendable () async throws -> Void) async {
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
    init(_ task: InboxTask, formJSON: String?) {
        let delivery = task.delivery
        self.init(
            id: delivery.id, source: delivery.source, type: delivery.type, receivedAt: delivery.receivedAt, attempt: task.attempt, headers: delivery.headers,
            raw: delivery.body, formJSON: formJSON)
    }
}
