import Foundation

/// The inbox of durable delivery: every verified delivery, written before the sender gets its 2xx,
/// and the state of each (delivery, handler) pair. The receiver appends, the dispatcher claims and
/// finishes, operators list, show, replay and purge.
public protocol DeliveryInbox: Sendable {
    /// Stores `delivery` durably (on disk when this returns). Appends from concurrent callers share
    /// one transaction. A (source, id) already accepted within `retention` is not stored again.
    /// With `claimed`, its pairs start as running attempt 1, leased for `lease`, for the caller to
    /// run at once (`respond: sync`).
    func append(_ delivery: InboxDelivery, retention: Duration, claimed: Bool, lease: Duration) async throws -> AppendResult
    /// Leases due pairs: new ones, retries whose time has come, and running ones whose lease ran
    /// out (their process died). `choose` sees the candidates, oldest first, and returns those to
    /// take; each taken pair's attempt count goes up by one.
    func claim(candidates: Int, lease: Duration, choose: @escaping @Sendable ([TaskCandidate]) -> [TaskCandidate]) async throws -> [InboxTask]
    /// Extends the leases of pairs this process is running (delivery, handler, attempt).
    func renew(_ pairs: [(delivery: Int64, handler: String, attempt: Int)], lease: Duration) async throws
    /// Gives a delivery's (source, id) back, so that a resend is not taken for a duplicate: for a
    /// `respond: sync` delivery whose handler failed and whose sender was answered non-2xx.
    func forget(_ seq: Int64) async throws
    /// Records how an attempt ended. False when the pair was no longer this attempt's (its lease
    /// ran out and another claim took it): nothing is recorded then.
    @discardableResult
    func finish(_ task: InboxTask, outcome: InboxOutcome, record: AttemptRecord) async throws -> Bool
    /// Adds (or makes due again) the pairs for `handlers` of a delivery whose handlers were
    /// resolved again (a replay), and closes the resolve marker `task`.
    func resolved(_ task: InboxTask, handlers: [String]) async throws
    /// Deliveries, newest first.
    func list(_ filter: DeliveryFilter) async throws -> [DeliverySummary]
    /// One delivery with its body, headers, pairs and every attempt; nil when unknown.
    func show(_ seq: Int64) async throws -> DeliveryDetail?
    /// The inbox numbers of the deliveries a sender's delivery id names (one per source).
    func find(id: String) async throws -> [Int64]
    /// Makes deliveries run again on the handlers that are current when they are dispatched:
    /// `seq`'s every handler, or every dead pair matching `filter`. Returns how many deliveries.
    func replay(_ selection: ReplaySelection) async throws -> Int
    /// Deletes deliveries received before `before`: with `onlyFinished`, only those whose every
    /// pair is done (retention), otherwise whatever their state (`purge`). Returns how many.
    func purge(before: Date, onlyFinished: Bool) async throws -> Int
}

/// A verified delivery as stored.
public struct InboxDelivery: Sendable, Equatable {
    /// The inbox's own number for it (0 until stored).
    public var seq: Int64 = 0
    public var source: String
    /// The sender's delivery id (deduplication key within a source).
    public var id: String
    public var type: String
    public var receivedAt: Date
    public var headers: [String: String]
    public var body: [UInt8]
    /// Paths of the handlers resolved for it, relative to the handlers folder.
    public var handlers: [String]

    public init(source: String, id: String, type: String, receivedAt: Date, headers: [String: String], body: [UInt8], handlers: [String]) {
        self.source = source
        self.id = id
        self.type = type
        self.receivedAt = receivedAt
        self.headers = headers
        self.body = body
        self.handlers = handlers
    }
}

/// What `append` did.
public enum AppendResult: Sendable, Equatable {
    case accepted(seq: Int64)
    /// Already accepted as inbox delivery `seq` at `receivedAt`.
    case duplicate(seq: Int64, receivedAt: Date)
}

/// A (delivery, handler) pair `claim` may take.
public struct TaskCandidate: Sendable, Equatable {
    public var delivery: Int64
    public var source: String
    /// Handler path; empty for a marker asking for the delivery's handlers to be resolved again.
    public var handler: String
    /// Its last attempt was left running by a process that ended (its lease ran out).
    public var abandoned: Bool
    public init(delivery: Int64, source: String, handler: String, abandoned: Bool = false) {
        self.delivery = delivery
        self.source = source
        self.handler = handler
        self.abandoned = abandoned
    }
}

/// One (delivery, handler) pair to run.
public struct InboxTask: Sendable, Equatable {
    public var delivery: InboxDelivery
    /// Handler path; empty for a resolve marker.
    public var handler: String
    /// Which attempt this is, counting every attempt ever made (1 for the first).
    public var attempt: Int
    /// Failed attempts since the pair was last replayed: what the retry budget is charged with.
    /// An attempt whose process ended while running it counts as failed, so that a delivery that
    /// takes its process down is dead-lettered after its retries instead of running forever.
    public var failures: Int
    /// The previous attempt never finished: the process running it ended (counted in `failures`).
    public var abandoned: Bool

    public init(delivery: InboxDelivery, handler: String, attempt: Int, failures: Int, abandoned: Bool = false) {
        self.delivery = delivery
        self.handler = handler
        self.attempt = attempt
        self.failures = failures
        self.abandoned = abandoned
    }
}

/// How an attempt ended.
public enum InboxOutcome: Sendable, Equatable {
    case done
    /// Failed; run again at `at`.
    case retry(at: Date, error: String)
    /// Failed for the last time: dead-lettered until replayed.
    case dead(error: String)
}

/// What an attempt did, for `deliveries show`.
public struct AttemptRecord: Sendable, Equatable {
    public var startedAt: Date
    public var finishedAt: Date
    /// The lines the handler logged, as JSON objects.
    public var logs: [String]

    public init(startedAt: Date, finishedAt: Date, logs: [String]) {
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.logs = logs
    }
}

/// The states of a (delivery, handler) pair.
public enum TaskStatus: String, Sendable, CaseIterable {
    case pending, running, done, retry, dead
}

/// Which deliveries `list` shows.
public struct DeliveryFilter: Sendable, Equatable {
    /// Only deliveries with a pair in this state.
    public var status: TaskStatus?
    public var source: String?
    /// Only deliveries received at or after this.
    public var since: Date?
    public var limit: Int

    public init(status: TaskStatus? = nil, source: String? = nil, since: Date? = nil, limit: Int = 100) {
        self.status = status
        self.source = source
        self.since = since
        self.limit = limit
    }
}

/// What `replay` runs again.
public enum ReplaySelection: Sendable, Equatable {
    /// One delivery, every handler current for its type.
    case delivery(Int64)
    /// Every dead pair of deliveries matching the filter (its `status` is ignored).
    case dead(DeliveryFilter)
}

/// A line of `deliveries list`.
public struct DeliverySummary: Sendable, Equatable {
    public var seq: Int64
    public var source: String
    public var id: String
    public var type: String
    public var receivedAt: Date
    /// Pairs per state.
    public var statuses: [TaskStatus: Int]
}

/// Everything about one delivery.
public struct DeliveryDetail: Sendable, Equatable {
    public var delivery: InboxDelivery
    public var tasks: [TaskDetail]
    public var attempts: [AttemptDetail]

    public struct TaskDetail: Sendable, Equatable {
        public var handler: String
        public var status: TaskStatus
        public var attempts: Int
        public var dueAt: Date?
        public var lastError: String?
    }

    public struct AttemptDetail: Sendable, Equatable {
        public var handler: String
        public var attempt: Int
        public var startedAt: Date
        public var finishedAt: Date
        /// `done`, `retry` or `dead`.
        public var outcome: String
        public var error: String?
        public var logs: [String]
    }
}
