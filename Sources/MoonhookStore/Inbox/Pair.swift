import Foundation

/// What a (delivery, handler) pair asks for.
public enum PairKind: String, Sendable, Equatable {
    /// Run the handler.
    case handler
    /// Resolve the delivery's handlers again, as its source has them now, and make their pairs
    /// due (a replay of the whole delivery). Its `handler` is empty.
    case replay
}

/// The states of a (delivery, handler) pair.
public enum PairStatus: String, Sendable, CaseIterable, Codable {
    case pending, running, done, retry, dead
}

/// A (delivery, handler) pair `claim` may take.
public struct PairCandidate: Sendable, Equatable {
    public var delivery: Int64
    public var source: String
    /// Handler path; empty for a replay.
    public var handler: String
    public var kind: PairKind
    /// Its last attempt was left running by a process that ended (its lease ran out).
    public var abandoned: Bool
    /// Pairs of its source running now, in every process sharing the store (live leases), so that
    /// a source's `concurrency` holds store-wide.
    public var sourceRunning: Int
    /// Pairs of its handler running now, in every process sharing the store.
    public var handlerRunning: Int

    public init(
        delivery: Int64, source: String, handler: String, kind: PairKind = .handler, abandoned: Bool = false, sourceRunning: Int = 0,
        handlerRunning: Int = 0
    ) {
        self.delivery = delivery
        self.source = source
        self.handler = handler
        self.kind = kind
        self.abandoned = abandoned
        self.sourceRunning = sourceRunning
        self.handlerRunning = handlerRunning
    }
}

/// One (delivery, handler) pair to run, leased to this process.
///
/// Its `attempt` is the lease's fencing token: every claim raises it, and `finish` and `renew`
/// act only while the pair is still running that attempt, so a process that lost its lease
/// records nothing.
public struct ClaimedPair: Sendable, Equatable {
    public var delivery: InboxDelivery
    /// Handler path; empty for a replay.
    public var handler: String
    public var kind: PairKind
    /// Which attempt this is, counting every attempt ever made (1 for the first).
    public var attempt: Int
    /// Failed attempts since the pair was last replayed: what the retry budget is charged with.
    /// An attempt whose process ended while running it counts as failed, so that a delivery that
    /// takes its process down is dead-lettered after its retries instead of running forever.
    public var failures: Int
    /// The previous attempt never finished: the process running it ended (counted in `failures`).
    public var abandoned: Bool

    public init(delivery: InboxDelivery, handler: String, kind: PairKind = .handler, attempt: Int, failures: Int, abandoned: Bool = false) {
        self.delivery = delivery
        self.handler = handler
        self.kind = kind
        self.attempt = attempt
        self.failures = failures
        self.abandoned = abandoned
    }

    /// What `renew` needs of it.
    public var lease: PairLease { PairLease(delivery: delivery.seq, handler: handler, attempt: attempt) }
}

/// A pair this process holds, by attempt: what `renew` extends.
public struct PairLease: Sendable, Hashable {
    public var delivery: Int64
    public var handler: String
    public var attempt: Int

    public init(delivery: Int64, handler: String, attempt: Int) {
        self.delivery = delivery
        self.handler = handler
        self.attempt = attempt
    }
}

/// How an attempt ended.
public enum PairOutcome: Sendable, Equatable {
    case done
    /// Failed; run again at `at`.
    case retry(at: Date, error: String)
    /// Failed for the last time: dead-lettered until replayed. `alert`, when given, is stored in
    /// the same transaction as the dead outcome (and only if that outcome is recorded): the
    /// source's dead-letter alert, whose id the pair's death determines.
    case dead(error: String, alert: InboxDelivery? = nil)

    /// The dead-letter alert to store with it.
    public var alert: InboxDelivery? {
        if case .dead(_, let alert) = self { alert } else { nil }
    }

    /// The state it leaves the pair in.
    public var status: PairStatus {
        switch self {
        case .done: .done
        case .retry: .retry
        case .dead: .dead
        }
    }

    public var error: String? {
        switch self {
        case .done: nil
        case .retry(_, let error), .dead(let error, _): error
        }
    }

    /// What the engines write for `pair` ending this way at `now` (Unix milliseconds): when it is
    /// due next, and its failures since the last replay (a failed attempt adds one).
    func recorded(for pair: ClaimedPair, now: Int64) -> (due: Int64, failures: Int) {
        switch self {
        case .done: (now, pair.failures)
        case .retry(let at, _): (Int64((at.timeIntervalSince1970 * 1000).rounded()), pair.failures + 1)
        case .dead: (now, pair.failures + 1)
        }
    }
}

/// Pairs per state, and how far behind each source is.
public struct PairCounts: Sendable, Equatable {
    /// Pairs in each state (states with none are absent).
    public var byStatus: [PairStatus: Int]
    /// Per source, when its oldest delivery with a pending or retrying pair was received.
    public var oldestWaiting: [String: Date]

    public init(byStatus: [PairStatus: Int], oldestWaiting: [String: Date]) {
        self.byStatus = byStatus
        self.oldestWaiting = oldestWaiting
    }
}

/// The pairs not done, as the metrics gauges show them: read from the open pairs only (indexed),
/// never the done ones, which a store keeps by the million.
public struct OpenPairs: Sendable, Equatable {
    /// Per source, its pairs in each state but done (states with none are absent).
    public var bySource: [String: [PairStatus: Int]]
    /// Per source, since when its longest-waiting due pair has been due: a pending pair since it
    /// was stored, a retry since its retry time (one waiting for its time is not late).
    public var oldestDue: [String: Date]

    public init(bySource: [String: [PairStatus: Int]], oldestDue: [String: Date]) {
        self.bySource = bySource
        self.oldestDue = oldestDue
    }
}
