import Foundation
import LuaRuntime
import MoonhookStore
import Synchronization

/// `respond: sync` deliveries: the receiver runs their pairs itself, while the sender waits, but in
/// slots of the same limits as every other pair. A slot that comes free goes to a waiting sender
/// first; the wait counts against the handler's timeout.
extension HandlerDispatcher {
    /// How a `respond: sync` pair's run ended.
    public enum SynchronousOutcome: Sendable {
        /// It ran; the handler's outcome.
        case finished(LuaOutcome)
        /// No slot came free within the handler's timeout; the pair is recorded dead, not run.
        case noSlot(timeout: Duration)
        /// An earlier event of its `serial` key did not finish within the handler's timeout; the
        /// pair is recorded dead, not run.
        case keyBusy(timeout: Duration, behind: Int64)
        /// Its handler's `max_rate` let it start no sooner than past the handler's timeout; the pair
        /// is recorded dead, not run.
        case rateBusy(timeout: Duration)
    }

    /// Runs a pair the caller claimed itself and holds (a `respond: sync` delivery, stored already running, see `hold`)
    /// once a slot is free within the server's, the source's and the handler's limits, and records
    /// the outcome; a failure is dead-lettered at once, since the sender is answered with it and
    /// will resend. The wait for the slot counts against the handler's timeout; a pair that gets
    /// no slot within it is recorded dead without running (`noSlot`).
    /// Holds the leases of a `respond: sync` delivery's pairs, stored already running, from when
    /// they are stored until the sender is answered: a pair that waits for a slot longer than the
    /// lease must not be taken for one a dead process left behind and run a second time.
    public func hold(_ pairs: [ClaimedPair]) {
        ledger.track(pairs)
    }

    /// Ends `hold`: the sender has been answered and every pair recorded.
    public func letGo(_ pairs: [ClaimedPair]) {
        ledger.untrack(pairs)
    }

    /// Gives the slot a synchronous pair ran in back (its lease stays held until `letGo`).
    private func giveBack(_ pair: ClaimedPair) {
        ledger.giveBack(source: pair.delivery.source, handlers: [pair.handler])
    }

    public func runSynchronously(_ pair: ClaimedPair, source: Source, handler: LoadedHandler) async -> SynchronousOutcome {
        let timeout = handler.options.timeout ?? defaultTimeout
        let clock = ContinuousClock()
        let start = clock.now
        if pair.delivery.orderingKeys[pair.handler] != nil, let behind = await waitForKey(pair, until: start + timeout) {
            await drop(pair, error: "delivery \(behind) of its serial key did not finish within the handler's \(timeout.totalMilliseconds) ms timeout (respond: sync); the sender was answered 503")
            return .keyBusy(timeout: timeout, behind: behind)
        }
        if let interval = handler.startInterval, let wait = await waitForStart(handler.path, interval: interval, until: start + timeout) {
            await drop(pair, error: "its max_rate let it start no sooner than in \(wait.totalMilliseconds) ms, past the handler's \(timeout.totalMilliseconds) ms timeout (respond: sync); the sender was answered 503")
            return .rateBusy(timeout: timeout)
        }
        guard await waitForSlot(source: source, handler: handler, within: timeout - (clock.now - start)) else {
            await drop(pair, error: "no free slot within the handler's \(timeout.totalMilliseconds) ms timeout (respond: sync); the sender was answered 503")
            return .noSlot(timeout: timeout)
        }
        defer { giveBack(pair) }
        let left = timeout - (clock.now - start)
        return .finished(await attempt(pair, retrying: false, timeout: max(left, .milliseconds(1))))
    }

    /// Waits until nothing of `pair`'s serial key stands before it, looking every 50 ms, until
    /// `deadline`; the delivery it still waits behind then (nil: it may run).
    private func waitForKey(_ pair: ClaimedPair, until deadline: ContinuousClock.Instant) async -> Int64? {
        await poll(until: deadline, last: 0, failure: "cannot look at a serial key", handler: pair.handler) {
            try await inbox.waitsBehind(pair).map { (answer: $0, again: .milliseconds(50)) }
        }
    }

    /// Takes the next start of a rated handler, waiting for it until `deadline`; nil once taken,
    /// else how long it would still have had to wait.
    private func waitForStart(_ handler: String, interval: Duration, until deadline: ContinuousClock.Instant) async -> Duration? {
        await poll(until: deadline, last: .milliseconds(50), failure: "cannot take a rated handler's start", handler: handler) {
            try await inbox.takeStart(handler: handler, interval: interval).map { (answer: $0, again: $0) }
        }
    }

    /// Asks `probe` until it answers nil (then nil) or its next try would come past `deadline`
    /// (then its last answer, `last` if it never gave one). A probe that throws, a store that cannot
    /// say, is logged and asked again in 50 ms; a cancelled wait (the sender went away) ends at once.
    private func poll<Answer>(
        until deadline: ContinuousClock.Instant, last: Answer, failure: String, handler: String,
        _ probe: () async throws -> (answer: Answer, again: Duration)?
    ) async -> Answer? {
        var last = last
        while true {
            var again = Duration.milliseconds(50)
            do {
                guard let next = try await probe() else { return nil }
                (last, again) = next
            } catch {
                logger.warning("\(failure)", metadata: ["error": "\(error)", "handler.path": "\(handler)"])
            }
            guard ContinuousClock.now + again < deadline else { return last }
            do { try await Task.sleep(for: again) } catch { return last }
        }
    }

    /// Where a waiting synchronous delivery stands in the line, for its timer.
    private final class Waiting: Sendable {
        enum Place {
            case starting
            case queued(Int)
            case gaveUp
        }

        let place = Mutex(Place.starting)
    }

    /// Takes a slot for `handler` of `source`, waiting at most `limit` for one to come free.
    private func waitForSlot(source: Source, handler: LoadedHandler, within limit: Duration) async -> Bool {
        let limits = Self.limits(source, handler)
        let waiting = Waiting()
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: limit)
                // Time is up (or the request went away): out of the line, unless it got its slot.
                let ticket = self.ledger.state.withLock { state in
                    waiting.place.withLock { waiting -> CheckedContinuation<Bool, Never>? in
                        defer { waiting = .gaveUp }
                        guard case .queued(let id) = waiting else { return nil }
                        return state.slots.abandon(id)
                    }
                }
                ticket?.resume(returning: false)
            }
            let granted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer = ledger.state.withLock { state -> Bool? in
                    if state.slots.take(source: source.name, handler: handler.path, limits: limits) { return true }
                    return waiting.place.withLock { waiting -> Bool? in
                        if case .gaveUp = waiting { return false }
                        waiting = .queued(state.slots.wait(source: source.name, handler: handler.path, limits: limits, ticket: continuation))
                        return nil
                    }
                }
                if let answer { continuation.resume(returning: answer) }
            }
            group.cancelAll()
            return granted
        }
    }

    /// Records a pair that the caller claimed dead without running it (with its dead-letter
    /// alert, if one is due), and shows it on the live stream as an attempt that ended dead.
    public func drop(_ pair: ClaimedPair, error: String, alert: InboxDelivery? = nil) async {
        metrics.deadLetter(source: pair.delivery.source, handler: pair.handler)
        await recorder.drop(pair, error: error, alert: alert)
        live.publish(LiveEvent.attempt(pair, outcome: .dead(error: error, alert: nil), duration: .zero))
    }
}
