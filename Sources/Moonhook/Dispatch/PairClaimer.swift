import Logging
import MoonhookStore
import Synchronization

/// Claims due pairs from the inbox: as many as the dispatcher has free slots, within the server's,
/// the sources' and the handlers' limits (the last two counted across every process sharing the
/// store). Slots are taken while the claim's transaction chooses, and given back for whatever the
/// transaction did not lease in the end.
struct PairClaimer: Sendable {
    let inbox: any DeliveryInbox
    let sources: SourceDirectory
    let ledger: DispatchLedger
    let lease: Duration
    let logger: Logger

    /// What a claim found besides its pairs.
    enum Room {
        /// No slot was free: nothing was looked for (a finishing invocation looks again).
        case none
        /// Fewer pairs than free slots: nothing more is due now.
        case left
        /// Every free slot was filled: more may be due.
        case filled
    }

    /// The least time between two starts of each rated handler (`max_rate`), by path.
    private func intervals() -> [String: Duration] {
        var intervals: [String: Duration] = [:]
        for source in sources.catalog.sources.values {
            for handler in source.handlers { if let interval = handler.startInterval { intervals[handler.path] = interval } }
        }
        return intervals
    }

    /// The pairs leased to this process, tracked as running here.
    /// `wakeAfter`: a rated handler had a pair due whose time to start had not come; look again then.
    func claim() async -> (pairs: [ClaimedPair], room: Room, wakeAfter: Duration?) {
        let free = ledger.state.withLock { $0.slots.free }
        guard free > 0 else { return ([], .none, nil) }
        let choice = Choice()
        let pairs: [ClaimedPair]
        let intervals = intervals()
        do {
            pairs = try await inbox.claim(candidates: free, lease: lease, intervals: intervals) { candidates in
                choose(from: candidates, free: free, into: choice)
            }
        } catch {
            logger.error("claiming deliveries failed", metadata: ["error": "\(error)"])
            pairs = []
        }
        // Give back what was chosen but not leased (a failed or repeated transaction). From here
        // on, a transaction still running after its deadline chooses nothing.
        // Under the ledger's lock, which `choose` holds from its look at `closed` to its choice.
        var unclaimed = ledger.state.withLock { _ in choice.close() }
        for pair in pairs {
            if let index = unclaimed.firstIndex(where: { $0.delivery == pair.delivery.seq && $0.handler == pair.handler }) {
                unclaimed.remove(at: index)
            }
        }
        DispatchLedger.wake(
            ledger.state.withLock { state in
                for pair in pairs { DispatchLedger.track(pair, in: &state) }
                return unclaimed.flatMap { state.slots.give(source: $0.source, handler: $0.handler) }
            })
        let held = unclaimed.compactMap { intervals[$0.handler] }.min()
        return (pairs, pairs.count >= free ? .filled : .left, held)
    }

    /// What the transaction chose last: a transaction run again chooses again. Once the claim
    /// is over (a transaction abandoned at its deadline may still be running), it chooses nothing.
    private final class Choice: Sendable {
        let chosen = Mutex<(pairs: [PairCandidate], closed: Bool)>(([], false))

        /// The last choice, and no more choosing.
        func close() -> [PairCandidate] {
            chosen.withLock { state in
                state.closed = true
                return state.pairs
            }
        }
    }

    private func choose(from candidates: [PairCandidate], free: Int, into choice: Choice) -> [PairCandidate] {
        let catalog = sources.catalog
        let (chosen, granted) = ledger.state.withLock { state -> ([PairCandidate], [CheckedContinuation<Bool, Never>]) in
            // A transaction run again calls this again: its earlier choice is given back first.
            let (earlier, closed) = choice.chosen.withLock { ($0.pairs, $0.closed) }
            if closed { return ([], []) }
            let granted = earlier.flatMap { state.slots.give(source: $0.source, handler: $0.handler) }
            var chosen: [PairCandidate] = []
            for candidate in candidates where chosen.count < free {
                // Its lease ran out while this process still runs it (renewal fell behind): it is
                // not run a second time alongside.
                if state.running[DispatchLedger.Key(delivery: candidate.delivery, handler: candidate.handler)] != nil { continue }
                let source = catalog.sources[candidate.source]
                let limits = HandlerDispatcher.limits(source, source?.handler(at: candidate.handler))
                // The store counts this process's running pairs too: only the rest run elsewhere.
                let here = state.slots.held(source: candidate.source, handler: candidate.handler)
                let elsewhere = DispatchLedger.Slots.Elsewhere(
                    source: max(0, candidate.sourceRunning - here.source), handler: max(0, candidate.handlerRunning - here.handler))
                if state.slots.take(source: candidate.source, handler: candidate.handler, limits: limits, elsewhere: elsewhere) {
                    chosen.append(candidate)
                }
            }
            choice.chosen.withLock { $0.pairs = chosen }
            return (chosen, granted)
        }
        DispatchLedger.wake(granted)
        return chosen
    }
}
