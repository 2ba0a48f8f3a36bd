import Foundation

/// Which deliveries a query, a replay or a purge takes. Every condition set must hold.
public struct DeliveryFilter: Sendable, Equatable {
    /// Only deliveries with a pair in this state.
    public var status: PairStatus?
    public var source: String?
    /// Only deliveries of this event type.
    public var type: String?
    /// Only deliveries with this sender's delivery id.
    public var id: String?
    /// Only deliveries received at or after this.
    public var since: Date?
    /// Only deliveries received before this.
    public var until: Date?
    /// At most this many per page.
    public var limit: Int
    /// Only deliveries numbered below this: the `next` of the previous page.
    public var cursor: Int64?

    public init(
        status: PairStatus? = nil, source: String? = nil, type: String? = nil, id: String? = nil, since: Date? = nil, until: Date? = nil,
        limit: Int = 100, cursor: Int64? = nil
    ) {
        self.status = status
        self.source = source
        self.type = type
        self.id = id
        self.since = since
        self.until = until
        self.limit = limit
        self.cursor = cursor
    }
}

/// One page of `deliveries`.
public struct DeliveryPage: Sendable, Equatable {
    /// Newest first.
    public var deliveries: [DeliverySummary]
    /// The cursor of the next (older) page; nil on the last.
    public var next: Int64?

    public init(deliveries: [DeliverySummary], next: Int64?) {
        self.deliveries = deliveries
        self.next = next
    }
}

/// What `replay` runs again.
public enum ReplaySelection: Sendable, Equatable {
    /// One delivery, on every handler current for its type when it is dispatched.
    case delivery(Int64)
    /// Every dead pair of the deliveries matching the filter (its `status`, `limit` and `cursor` ignored).
    case dead(DeliveryFilter)
}

/// Where a replayed pair of a `serial` handler goes among the other pairs of its key.
public enum ReplayOrder: String, Sendable, Equatable {
    /// Behind every pair of its key stored or replayed before the replay.
    case keep
    /// At its own delivery's place: ahead of the newer ones (`--out-of-order`, `?order=ignore`).
    case ignore
}

extension DeliveryInbox {
    /// `claim` with no handler's rate limited.
    public func claim(candidates: Int, lease: Duration, choose: @escaping @Sendable ([PairCandidate]) -> [PairCandidate]) async throws -> [ClaimedPair] {
        try await claim(candidates: candidates, lease: lease, intervals: [:], choose: choose)
    }

    /// `replay(selection, order: .keep)`.
    public func replay(_ selection: ReplaySelection) async throws -> Int {
        try await replay(selection, order: .keep)
    }
}

/// A line of `deliveries list`.
public struct DeliverySummary: Sendable, Equatable {
    public var seq: Int64
    public var source: String
    public var id: String
    public var type: String
    public var receivedAt: Date
    /// Pairs per state.
    public var statuses: [PairStatus: Int]

    public init(seq: Int64, source: String, id: String, type: String, receivedAt: Date, statuses: [PairStatus: Int]) {
        self.seq = seq
        self.source = source
        self.id = id
        self.type = type
        self.receivedAt = receivedAt
        self.statuses = statuses
    }
}

/// Everything about one delivery.
public struct DeliveryDetail: Sendable, Equatable {
    public var delivery: InboxDelivery
    public var pairs: [PairDetail]
    public var attempts: [AttemptDetail]

    public init(delivery: InboxDelivery, pairs: [PairDetail], attempts: [AttemptDetail]) {
        self.delivery = delivery
        self.pairs = pairs
        self.attempts = attempts
    }

    public struct PairDetail: Sendable, Equatable {
        public var handler: String
        public var status: PairStatus
        public var attempts: Int
        public var dueAt: Date?
        public var lastError: String?
        /// A `serial` handler's key for this delivery (without its `block:`/`skip:` mode).
        public var orderingKey: String?
        /// The delivery whose pair of the same handler and key this one waits behind, if it waits.
        public var waitingOn: Int64?

        public init(
            handler: String, status: PairStatus, attempts: Int, dueAt: Date?, lastError: String?, orderingKey: String? = nil, waitingOn: Int64? = nil
        ) {
            self.handler = handler
            self.status = status
            self.attempts = attempts
            self.dueAt = dueAt
            self.lastError = lastError
            self.orderingKey = orderingKey.map { key in key.firstIndex(of: ":").map { String(key[key.index(after: $0)...]) } ?? key }
            self.waitingOn = waitingOn
        }
    }

    public struct AttemptDetail: Sendable, Equatable {
        public var handler: String
        public var attempt: Int
        public var startedAt: Date
        public var finishedAt: Date
        /// `done`, `retry` or `dead`.
        public var outcome: PairStatus
        public var error: String?
        public var logs: [AttemptLogLine]

        public init(handler: String, attempt: Int, startedAt: Date, finishedAt: Date, outcome: PairStatus, error: String?, logs: [AttemptLogLine]) {
            self.handler = handler
            self.attempt = attempt
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.outcome = outcome
            self.error = error
            self.logs = logs
        }
    }
}
