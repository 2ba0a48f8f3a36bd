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
        case start([ClaimedPair])
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
    ///
    /// A source or handler with a `concurrency` limit is never reserved this way: its limit holds
    /// across every process sharing the store, which only a claim can count.
    public func reserve(source: Source, handlers: [LoadedHandler]) -> Bool {
        if source.configuration.concurrency != nil || handlers.contains(where: { $0.options.concurrency != nil }) { return false }
        return state.withLock { state in
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
    public func start(_ pairs: [ClaimedPair]) {
        state.withLock { state in
            for pair in pairs { Self.track(pair, in: &state) }
        }
        if case .terminated = signal.yield(.start(pairs)) {
            // Shutting down already: they run, here or elsewhere, once their lease runs out.
            for pair in pairs { release(pair) }
        }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.tick() }
            background.addTask { await self.renewLeases() }
            background.addTask {
                for await _ in self.inbox.wakeups { self.wake() }
            }
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for await signal in stream {
                        let pairs: [ClaimedPair]
                        switch signal {
                        case .wake:
                            wakeQueued.store(false, ordering: .releasing)
                            pairs = await claim()
                        case .start(let started):
                            pairs = started
                        }
                        for pair in pairs {
                            group.addTask {
                                await self.execute(pair)
                                self.release(pair)
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
            let running = state.withLock { $0.running.map { PairLease(delivery: $0.key.delivery, handler: $0.key.handler, attempt: $0.value) } }
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
    private func claim() async -> [ClaimedPair] {
        let free = state.withLock { $0.slots.free }
        guard free > 0 else { return [] }
        let reservation = Reservation()
        let pairs: [ClaimedPair]
        do {
            pairs = try await inbox.claim(candidates: free, lease: settings.lease) { candidates in
                self.reserve(from: candidates, free: free, into: reservation)
            }
        } catch {
            logger.error("claiming deliveries failed", metadata: ["error": "\(error)"])
            pairs = []
        }
        // Give back what was reserved but not leased (a failed or repeated transaction).
        var unclaimed = reservation.chosen.withLock { $0 }
        for pair in pairs {
            if let index = unclaimed.firstIndex(where: { $0.delivery == pair.delivery.seq && $0.handler == pair.handler }) {
                unclaimed.remove(at: index)
            }
        }
        let granted = state.withLock { state in
            for pair in pairs { Self.track(pair, in: &state) }
            return unclaimed.flatMap { state.slots.give(source: $0.source, handler: $0.handler) }
        }
        Self.wake(granted)
        // Fewer than there was room for: nothing more is due now (retries come with the tick).
        if pairs.count < free { backlog.store(false, ordering: .relaxed) } else { poke() }
        return pairs
    }

    private final class Reservation: Sendable {
        let chosen = Mutex<[PairCandidate]>([])
    }

    private func reserve(from candidates: [PairCandidate], free: Int, into reservation: Reservation) -> [PairCandidate] {
        let catalog = sources.catalog
        let (chosen, granted) = state.withLock { state in
            // A transaction run again calls this again: its earlier choice is given back first.
            let granted = reservation.chosen.withLock({ $0 }).flatMap { state.slots.give(source: $0.source, handler: $0.handler) }
            var chosen: [PairCandidate] = []
            for candidate in candidates where chosen.count < free {
                // Its lease ran out while this process still runs it (renewal fell behind): it is
                // not run a second time alongside.
                if state.running[Key(delivery: candidate.delivery, handler: candidate.handler)] != nil { continue }
                let source = catalog.sources[candidate.source]
                let limits = Self.limits(source, source?.handler(at: candidate.handler))
                // The store counts this process's running pairs too: only the rest run elsewhere.
                let here = state.slots.held(source: candidate.source, handler: candidate.handler)
                let elsewhere = ConcurrencySlots<CheckedContinuation<Bool, Never>>.Elsewhere(
                    source: max(0, candidate.sourceRunning - here.source), handler: max(0, candidate.handlerRunning - here.handler))
                if state.slots.take(source: candidate.source, handler: candidate.handler, limits: limits, elsewhere: elsewhere) {
                    chosen.append(candidate)
                }
            }
            reservation.chosen.withLock { $0 = chosen }
            return (chosen, granted)
        }
        Self.wake(granted)
        return chosen
    }

    /// Counts a pair as running here: its lease is renewed until `untrack`.
    static func track(_ pair: ClaimedPair, in state: inout State) {
        state.running[Key(delivery: pair.delivery.seq, handler: pair.handler)] = pair.attempt
        state.counters.inFlight += 1
    }

    static func untrack(_ pair: ClaimedPair, in state: inout State) {
        state.running[Key(delivery: pair.delivery.seq, handler: pair.handler)] = nil
        state.counters.inFlight -= 1
    }

    /// Ends a pair run in a reserved slot: the slot and the lease go.
    func release(_ pair: ClaimedPair) {
        let granted = state.withLock { state in
            Self.untrack(pair, in: &state)
            return state.slots.give(source: pair.delivery.source, handler: pair.handler)
        }
        Self.wake(granted)
    }

    private func execute(_ pair: ClaimedPair) async {
        if pair.kind == .replay {
            await resolve(pair)
        } else if pair.abandoned, Self.retryPolicy(sources.source(named: pair.delivery.source), pair.handler).delay(afterFailure: pair.failures) == nil {
            // Its attempts keep ending with their process (a crash, a kill, an OOM): running it
            // again would take this process down too.
            let error = "attempt \(pair.attempt - 1) did not finish: the process running it ended, and that used up the pair's retries; dead-lettered without running it again"
            logger.error("handler dead-lettered", metadata: ["delivery.id": "\(pair.delivery.id)", "handler.path": "\(pair.handler)", "error": "\(error)"])
            state.withLock { $0.counters.deadLettered += 1 }
            await drop(pair, error: error)
        } else {
            _ = await attempt(pair, retrying: true)
        }
    }

    /// The retry policy of a pair: its source's, with its handler's own options over it.
    private static func retryPolicy(_ source: Source?, _ handlerPath: String) -> RetryPolicy {
        var policy = source?.configuration.retry ?? RetryPolicy()
        if let options = source?.handler(at: handlerPath)?.options { policy = policy.overridden(by: options) }
        return policy
    }

    /// A replay's marker: the delivery's handlers, as the source has them now, run again.
    private func resolve(_ pair: ClaimedPair) async {
        let handlers = sources.source(named: pair.delivery.source)?.handlers(for: pair.delivery.type).map(\.path) ?? []
        await record("resolving handlers") { try await self.inbox.resolved(pair, handlers: handlers) }
        logger.info(
            "delivery replayed",
            metadata: ["source": "\(pair.delivery.source)", "delivery.id": "\(pair.delivery.id)", "handlers": "\(handlers.joined(separator: ","))"])
    }

    func attempt(_ pair: ClaimedPair, retrying: Bool, timeout: Duration? = nil) async -> LuaOutcome {
        var logger = self.logger
        logger[metadataKey: "source"] = "\(pair.delivery.source)"
        logger[metadataKey: "event.type"] = "\(pair.delivery.type)"
        logger[metadataKey: "delivery.id"] = "\(pair.delivery.id)"
        logger[metadataKey: "handler.path"] = "\(pair.handler)"
        logger[metadataKey: "attempt"] = "\(pair.attempt)"
        let source = sources.source(named: pair.delivery.source)
        let handler = source?.handler(at: pair.handler)
        let started = Date()
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: LuaOutcome
        var lines: [AttemptLogLine] = []
        if let source, let handler {
            let context = HandlerContext(source: pair.delivery.source, logger: logger, redactions: source.redactions)
            let event = HandlerEvent(pair, formJSON: source.configuration.formJSON)
            outcome = await pool.invoke(handler, arguments: [event.luaValue], info: LuaInvocationInfo(handlerPath: handler.path, context: context), timeout: timeout)
            lines = context.logLines.map { AttemptLogLine(level: $0.level, message: $0.message, fields: $0.fields) }
        } else {
            let reason = source == nil ? "source '\(pair.delivery.source)' is not served" : "handler \(pair.handler) is not loaded"
            outcome = LuaOutcome(result: .failure(LuaError(.invalidHandler, reason)), instructions: 0)
        }
        let elapsed = clock.now - start
        let attemptRecord = AttemptRecord(startedAt: started, finishedAt: Date(), logs: lines)
        let result: PairOutcome
        switch outcome.result {
        case .success:
            result = .done
            state.withLock { $0.counters.succeeded += 1 }
            logger.debug("handler succeeded", metadata: ["duration.ms": "\(elapsed.totalMilliseconds)"])
        case .failure(let error):
            if retrying, let delay = Self.retryPolicy(source, pair.handler).delay(afterFailure: pair.failures + 1) {
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
            if try await self.inbox.finish(pair, outcome: result, record: attemptRecord) == false {
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
}

extension HandlerEvent {
    /// The event of a stored delivery, for the attempt `pair` is.
    init(_ pair: ClaimedPair, formJSON: String?) {
        let delivery = pair.delivery
        self.init(
            id: delivery.id, source: delivery.source, type: delivery.type, receivedAt: delivery.receivedAt, attempt: pair.attempt, headers: delivery.headers,
            raw: delivery.body, formJSON: formJSON)
    }
}
