/// A handler's `max_rate`, store-wide: the least time between two starts, kept as the time its
/// next pair may start (`rate_slots`, one row per rated handler, read and written inside the claim's
/// transaction, which every process takes one at a time). A chosen pair whose time has not come is
/// not leased and stays due; the claimer looks again when it comes.
public enum RateSpacing {
    /// For one start of `handler` at `now`: the slot afterwards when it may start, or how long
    /// until it may.
    static func take(handler: String, slot: Int64?, interval: Duration, now: Int64) -> (next: Int64?, wait: Duration?) {
        let candidate = PairCandidate(delivery: 0, source: "", handler: handler, kind: .handler, abandoned: false)
        let spaced = admit([candidate], slots: slot.map { [handler: $0] } ?? [:], intervals: [handler: interval], now: now)
        if spaced.admitted.isEmpty { return (nil, .milliseconds(max(1, (slot ?? now) - now))) }
        return (spaced.slots[handler], nil)
    }

    /// The pairs of `chosen` that may start at `now` (milliseconds), in order, and the slots
    /// afterwards: each admitted pair of a rated handler moves its slot on by the handler's interval
    /// from `now` or from the slot, whichever is later, so that a burst is spaced out, not let through.
    static func admit(_ chosen: [PairCandidate], slots: [String: Int64], intervals: [String: Duration], now: Int64) -> (
        admitted: [PairCandidate], slots: [String: Int64]
    ) {
        var slots = slots
        var admitted: [PairCandidate] = []
        for candidate in chosen {
            guard let interval = intervals[candidate.handler] else {
                admitted.append(candidate)
                continue
            }
            let next = slots[candidate.handler] ?? now
            guard next <= now else { continue }
            slots[candidate.handler] = max(next, now) + max(1, interval.totalMilliseconds)
            admitted.append(candidate)
        }
        return (admitted, slots)
    }
}
