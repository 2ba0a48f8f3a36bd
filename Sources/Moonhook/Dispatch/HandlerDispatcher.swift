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
/// directly (`reserve`, then the reservation's `start`), so the common path costs no claim
/// transaction. On graceful shutdown it stops claiming, finishes every invocation it started,
/// records them, then returns.
///
/// The parts, one concern each: `DispatchLedger` (slots, running pairs, counters; the slot
/// accounting itself is the pure `ConcurrencySlots`), `SlotReservation`, `PairClaimer`,
/// `LeaseRenewal`, `RetryPolicy` and `AttemptRecorder`; this type runs the loop and decides each
/// attempt's outcome.
public final class HandlerDispatcher: Service, Sendable {
    let inbox: any DeliveryInbox
    private let sources: SourceDirectory
    private let pool: WorkerPool
    private let settings: ServerConfiguration.DeliverySettings
    /// A handler's wall-clock limit when it sets no `timeout`.
    let defaultTimeout: Duration
    let logger: Logger
    let metrics: ServerMetrics
    /// Where attempts are shown as they end (the live stream).
    let live: LiveFeed
    let ledger: DispatchLedger
    private let claimer: PairClaimer
    private let renewal: LeaseRenewal
    let recorder: AttemptRecorder
    private let stream: AsyncStream<Signal>
    private let signal: AsyncStream<Signal>.Continuation
    /// A wake is queued and not yet acted on: further wakes add nothing.
    private let wakeQueued = Atomic(false)
    /// When the next `pokeLater` wake comes, if one is set.
    private let laterWake = Mutex<ContinuousClock.Instant?>(nil)
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

    public init(
        inbox: any DeliveryInbox, sources: SourceDirectory, pool: WorkerPool, settings: ServerConfiguration.DeliverySettings, maxConcurrent: Int,
        defaultTimeout: Duration, logger: Logger, metrics: ServerMetrics = ServerMetrics(), live: LiveFeed = LiveFeed()
    ) {
        self.inbox = inbox
        self.metrics = metrics
        self.live = live
        self.sources = sources
        self.pool = pool
        self.settings = settings
        self.defaultTimeout = defaultTimeout
        self.logger = logger
        let ledger = DispatchLedger(maxConcurrent: maxConcurrent)
        self.ledger = ledger
        claimer = PairClaimer(inbox: inbox, sources: sources, ledger: ledger, lease: settings.lease, logger: logger)
        renewal = LeaseRenewal(inbox: inbox, ledger: ledger, lease: settings.lease, logger: logger)
        recorder = AttemptRecorder(inbox: inbox, logger: logger)
        (stream, signal) = AsyncStream.makeStream(of: Signal.self)
    }

    public var counters: Counters { ledger.counters }

    /// Asks for a look at the inbox now (a delivery was stored unclaimed, a replay was made).
    public func wake() {
        backlog.store(true, ordering: .relaxed)
        poke()
    }

    private func poke() {
        if !wakeQueued.exchange(true, ordering: .acquiringAndReleasing) { signal.yield(.wake) }
    }

    /// Reserves a slot for each of `handlers` of a delivery from `source` about to be stored, if
    /// all fit within the limits now; the caller then stores it claimed and calls the
    /// reservation's `start`, or `cancel`. Takes the source and handlers the receiver resolved, so
    /// that a request costs no catalog lookup here.
    ///
    /// A source or handler with a `concurrency` limit is never reserved this way: its limit holds
    /// across every process sharing the store, which only a claim can count.
    public func reserve(source: Source, handlers: [LoadedHandler]) -> SlotReservation? {
        if handlers.isEmpty || source.configuration.concurrency != nil || handlers.contains(where: { $0.options.concurrency != nil }) { return nil }
        let reserved = ledger.state.withLock { state in
            var trial = state.slots
            for handler in handlers {
                guard trial.take(source: source.name, handler: handler.path, limits: Self.limits(source, handler)) else { return false }
            }
            state.slots = trial
            return true
        }
        return reserved ? SlotReservation(dispatcher: self, source: source.name, handlers: handlers.map(\.path)) : nil
    }

    static func limits(_ source: Source?, _ handler: LoadedHandler?) -> DispatchLedger.Slots.Limits {
        ConcurrencySlots.Limits(source: source?.configuration.concurrency, handler: handler?.options.concurrency)
    }

    /// Runs pairs stored already claimed (attempt 1) in slots a reservation holds.
    func startReserved(_ pairs: [ClaimedPair]) {
        ledger.track(pairs)
        if case .terminated = signal.yield(.start(pairs)) {
            // Shutting down already: they run, here or elsewhere, once their lease runs out.
            for pair in pairs { ledger.release(pair) }
        }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.tick() }
            background.addTask { await self.renewal.run() }
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
                            // A wake during the claim sets it again: what it announced may have
                            // come after the claim looked.
                            backlog.store(false, ordering: .relaxed)
                            let claimed = await claimer.claim()
                            pairs = claimed.pairs
                            if let wait = claimed.wakeAfter { pokeLater(after: wait) }
                            switch claimed.room {
                            // No slot free: the next invocation to finish looks again.
                            case .none: backlog.store(true, ordering: .relaxed)
                            // Fewer than there was room for: nothing more is due now (retries come with the tick).
                            case .left: break
                            case .filled:
                                backlog.store(true, ordering: .relaxed)
                                poke()
                            }
                        case .start(let started):
                            pairs = started
                        }
                        for pair in pairs {
                            group.addTask {
                                await self.execute(pair)
                                self.ledger.release(pair)
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

    /// Wakes the claim loop once `wait` has passed (a rated handler's next start), unless a wake is
    /// already set for then or sooner.
    private func pokeLater(after wait: Duration) {
        let due = ContinuousClock.now + wait
        let set = laterWake.withLock { current -> Bool in
            if let current, current <= due, current > .now { return false }
            current = due
            return true
        }
        guard set else { return }
        Task {
            try? await Task.sleep(until: due, clock: .continuous)
            laterWake.withLock { if $0 == due { $0 = nil } }
            self.poke()
        }
    }

    /// Wakes the claim loop every poll interval, for retries coming due and expired leases.
    private func tick() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.pollInterval)
            poke()
        }
    }

    private func execute(_ pair: ClaimedPair) async {
        if pair.kind == .replay {
            await resolve(pair)
        } else if pair.abandoned, Self.retryPolicy(sources.source(named: pair.delivery.source), pair.handler).delay(afterFailure: pair.failures) == nil {
            // Its attempts keep ending with their process (a crash, a kill, an OOM): running it
            // again would take this process down too.
            let error = "attempt \(pair.attempt - 1) did not finish: the process running it ended, and that used up the pair's retries; dead-lettered without running it again"
            logger.error("handler dead-lettered", metadata: ["delivery.id": "\(pair.delivery.id)", "handler.path": "\(pair.handler)", "error": "\(error)"])
            ledger.count { $0.deadLettered += 1 }
            let alert = DeadLetterAlert.delivery(for: pair, error: error, source: sources.source(named: pair.delivery.source))
            await drop(pair, error: error, alert: alert)
            if alert != nil { wake() }
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
        await recorder.resolved(pair, handlers: handlers)
        logger.info(
            "delivery replayed",
            metadata: ["source": "\(pair.delivery.source)", "delivery.id": "\(pair.delivery.id)", "handlers": "\(handlers.joined(separator: ","))"])
    }

    func attempt(_ pair: ClaimedPair, retrying: Bool, timeout: Duration? = nil) async -> LuaOutcome {
        var logger = self.logger
        // Set at once: five subscript sets copy and grow the handler's metadata five times.
        let fields: Logger.Metadata = [
            "source": .string(pair.delivery.source), "event.type": .string(pair.delivery.type), "delivery.id": .string(pair.delivery.id),
            "handler.path": .string(pair.handler), "attempt": .stringConvertible(pair.attempt),
        ]
        logger.handler.metadata = logger.handler.metadata.isEmpty ? fields : logger.handler.metadata.merging(fields) { $1 }
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
        metrics.invocation(source: pair.delivery.source, handler: pair.handler, outcome: outcome, duration: elapsed)
        let attemptRecord = AttemptRecord(startedAt: started, finishedAt: Date(), logs: lines)
        let result: PairOutcome
        switch outcome.result {
        case .success:
            result = .done
            ledger.count { $0.succeeded += 1 }
            logger.debug("handler succeeded", metadata: ["duration.ms": "\(elapsed.totalMilliseconds)"])
        case .failure(let error):
            if retrying, let delay = Self.retryPolicy(source, pair.handler).delay(afterFailure: pair.failures + 1) {
                let at = Date().addingTimeInterval(Double(delay.totalMilliseconds) / 1000)
                result = .retry(at: at, error: error.message)
                ledger.count { $0.failed += 1 }
                metrics.retry(source: pair.delivery.source, handler: pair.handler)
                logger.error(
                    "handler failed, will retry",
                    metadata: ["error": "\(error.message)", "duration.ms": "\(elapsed.totalMilliseconds)", "retry.in.s": "\(delay.totalMilliseconds / 1000)"])
            } else {
                // A respond: sync pair (not retrying) has told its sender already: no alert.
                result = .dead(error: error.message, alert: retrying ? DeadLetterAlert.delivery(for: pair, error: error.message, source: source) : nil)
                ledger.count {
                    $0.failed += 1
                    $0.deadLettered += 1
                }
                metrics.deadLetter(source: pair.delivery.source, handler: pair.handler)
                logger.error("handler failed, dead-lettered", metadata: ["error": "\(error.message)", "duration.ms": "\(elapsed.totalMilliseconds)"])
            }
        }
        await recorder.finish(pair, outcome: result, record: attemptRecord, logger: logger)
        live.publish(LiveEvent.attempt(pair, outcome: result, duration: elapsed))
        if result.alert != nil { wake() }
        return outcome
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
