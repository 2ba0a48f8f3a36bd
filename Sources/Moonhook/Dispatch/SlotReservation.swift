import MoonhookStore
import Synchronization

/// Slots the receiver reserved for a delivery it is about to store already claimed: `start` runs
/// its pairs in them, `cancel` gives them back (the delivery was not stored, or was a duplicate).
/// One of the two, once: a reservation dropped without either gives its slots back itself, so a
/// forgotten path cannot leak them (a pair stored claimed and never started runs once its lease
/// runs out).
public final class SlotReservation: Sendable {
    private let dispatcher: HandlerDispatcher
    private let source: String
    private let handlers: [String]
    private let open = Atomic(true)

    init(dispatcher: HandlerDispatcher, source: String, handlers: [String]) {
        self.dispatcher = dispatcher
        self.source = source
        self.handlers = handlers
    }

    /// Runs the stored delivery's pairs (attempt 1) in the reserved slots.
    public func start(_ pairs: [ClaimedPair]) {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { return }
        dispatcher.startReserved(pairs)
    }

    /// Gives the slots back.
    public func cancel() {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { return }
        dispatcher.ledger.giveBack(source: source, handlers: handlers)
    }

    deinit {
        if open.load(ordering: .acquiring) { dispatcher.ledger.giveBack(source: source, handlers: handlers) }
    }
}
