/// The dispatcher's slot accounting: at most `maxConcurrent` invocations at once, each source and
/// each handler held to its own limit, and callers waiting in line for a slot (a `respond: sync`
/// delivery, whose sender waits on the answer). A slot given back goes to the first waiter it fits
/// before anything else can take it, so queued pairs in the inbox never overtake a waiting sender.
///
/// Pure bookkeeping: the owner keeps it under its lock and wakes the waiters it hands back (the
/// `Ticket` each waiter left) once the lock is released.
struct ConcurrencySlots<Ticket> {
    /// A source's and a handler's own limits (nil: only the server's).
    struct Limits: Sendable, Equatable {
        var source: Int?
        var handler: Int?
    }

    private struct Waiter {
        var id: Int
        var source: String
        var handler: String
        var limits: Limits
        var ticket: Ticket
    }

    let maxConcurrent: Int
    /// Slots held now.
    private(set) var taken = 0
    private var perSource: [String: Int] = [:]
    private var perHandler: [String: Int] = [:]
    private var waiters: [Waiter] = []
    private var nextWaiter = 0

    init(maxConcurrent: Int) {
        self.maxConcurrent = max(1, maxConcurrent)
    }

    var free: Int { maxConcurrent - taken }

    /// Invocations of a source and of a handler running in other processes sharing the store:
    /// they count against the source's and the handler's limits too.
    struct Elsewhere: Sendable, Equatable {
        var source = 0
        var handler = 0
    }

    /// Slots held here for `source` and for `handler`.
    func held(source: String, handler: String) -> (source: Int, handler: Int) {
        (perSource[source, default: 0], perHandler[handler, default: 0])
    }

    /// Takes a slot for `handler` of `source` if the server's, the source's and the handler's
    /// limits allow it now, counting what runs `elsewhere` against the last two.
    mutating func take(source: String, handler: String, limits: Limits, elsewhere: Elsewhere = Elsewhere()) -> Bool {
        guard taken < maxConcurrent else { return false }
        if let limit = limits.source, perSource[source, default: 0] + elsewhere.source >= limit { return false }
        if let limit = limits.handler, perHandler[handler, default: 0] + elsewhere.handler >= limit { return false }
        perSource[source, default: 0] += 1
        perHandler[handler, default: 0] += 1
        taken += 1
        return true
    }

    /// Gives a slot back. Returns the tickets of the waiters that now hold a slot, in the order
    /// they began to wait.
    mutating func give(source: String, handler: String) -> [Ticket] {
        perSource[source, default: 1] -= 1
        if perSource[source] == 0 { perSource[source] = nil }
        perHandler[handler, default: 1] -= 1
        if perHandler[handler] == 0 { perHandler[handler] = nil }
        taken -= 1
        var granted: [Ticket] = []
        var index = 0
        while index < waiters.count, taken < maxConcurrent {
            let waiter = waiters[index]
            if take(source: waiter.source, handler: waiter.handler, limits: waiter.limits) {
                granted.append(waiter.ticket)
                waiters.remove(at: index)
            } else {
                index += 1
            }
        }
        return granted
    }

    /// Queues a caller for a slot; `give` hands its ticket back once it holds one. Returns the
    /// waiter's number, for `abandon`.
    mutating func wait(source: String, handler: String, limits: Limits, ticket: Ticket) -> Int {
        nextWaiter += 1
        waiters.append(Waiter(id: nextWaiter, source: source, handler: handler, limits: limits, ticket: ticket))
        return nextWaiter
    }

    /// Takes a waiter out of the line (it stops waiting); its ticket, or nil if it holds a slot already.
    mutating func abandon(_ id: Int) -> Ticket? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).ticket
    }
}
