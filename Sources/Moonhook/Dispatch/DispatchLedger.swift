import LuaRuntime
import MoonhookStore
import Synchronization

/// What the dispatcher holds right now, under one lock: its slots (`ConcurrencySlots`), the pairs
/// it runs with their attempt numbers (the leases to renew), and its counters. The claimer, the
/// lease renewal, the receiver's reservations and `respond: sync` runs all go through it. Waiters
/// handed a slot are woken outside the lock.
final class DispatchLedger: Sendable {
    typealias Slots = ConcurrencySlots<CheckedContinuation<Bool, Never>>

    struct Key: Hashable {
        var delivery: Int64
        var handler: String
    }

    struct State {
        var counters = HandlerDispatcher.Counters()
        /// Pairs this process runs now, with their attempt numbers: the leases to renew.
        var running: [Key: Int] = [:]
        /// A waiting synchronous delivery is woken with whether it got its slot.
        var slots: Slots
    }

    let state: Mutex<State>

    init(maxConcurrent: Int) {
        state = Mutex(State(slots: Slots(maxConcurrent: maxConcurrent)))
    }

    var counters: HandlerDispatcher.Counters { state.withLock { $0.counters } }

    func count(_ update: (inout HandlerDispatcher.Counters) -> Void) {
        state.withLock { update(&$0.counters) }
    }

    /// Counts pairs as running here: their leases are renewed until `untrack`.
    func track(_ pairs: [ClaimedPair]) {
        state.withLock { state in for pair in pairs { Self.track(pair, in: &state) } }
    }

    func untrack(_ pairs: [ClaimedPair]) {
        state.withLock { state in for pair in pairs { Self.untrack(pair, in: &state) } }
    }

    static func track(_ pair: ClaimedPair, in state: inout State) {
        state.running[Key(delivery: pair.delivery.seq, handler: pair.handler)] = pair.attempt
        state.counters.inFlight += 1
    }

    static func untrack(_ pair: ClaimedPair, in state: inout State) {
        state.running[Key(delivery: pair.delivery.seq, handler: pair.handler)] = nil
        state.counters.inFlight -= 1
    }

    /// Ends a pair run in a slot: the slot and the lease go.
    func release(_ pair: ClaimedPair) {
        Self.wake(
            state.withLock { state in
                Self.untrack(pair, in: &state)
                return state.slots.give(source: pair.delivery.source, handler: pair.handler)
            })
    }

    /// Gives slots back (their leases, if any, are someone else's to end).
    func giveBack(source: String, handlers: [String]) {
        Self.wake(state.withLock { state in handlers.flatMap { state.slots.give(source: source, handler: $0) } })
    }

    /// The leases of the pairs running here.
    var leases: [PairLease] {
        state.withLock { $0.running.map { PairLease(delivery: $0.key.delivery, handler: $0.key.handler, attempt: $0.value) } }
    }

    /// Tells waiting synchronous deliveries that they hold a slot now. Called outside the lock.
    static func wake(_ granted: [CheckedContinuation<Bool, Never>]) {
        for waiter in granted { waiter.resume(returning: true) }
    }
}
