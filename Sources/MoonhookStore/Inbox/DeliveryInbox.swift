import Foundation

/// The inbox of durable delivery: every verified delivery, written before the sender gets its 2xx,
/// and the state of each (delivery, handler) pair. The receiver appends, the dispatcher claims and
/// finishes, operators query, replay and purge.
///
/// Engine-neutral: every engine (SQLite, PostgreSQL) gives the same guarantees, which the shared
/// test suites check against each.
public protocol DeliveryInbox: Sendable {
    /// Stores `delivery` durably (committed when this returns). Appends from concurrent callers share
    /// one transaction. A (source, id) already accepted within `retention` is not stored again.
    /// With `claimed`, its pairs start as running attempt 1, leased for `lease`, for the caller to
    /// run at once.
    func append(_ delivery: InboxDelivery, retention: Duration, claimed: Bool, lease: Duration) async throws -> AppendResult
    /// Leases due pairs: new ones, retries whose time has come, and running ones whose lease ran
    /// out (their process died). `choose` sees the candidates, oldest first, and returns those to
    /// take; each taken pair's attempt count goes up by one. `choose` may be called more than once
    /// (a transaction run again): each call replaces the previous choice. `intervals` gives, by
    /// handler, the least time between two starts (`max_rate`), held store-wide (`RateSpacing`).
    func claim(
        candidates: Int, lease: Duration, intervals: [String: Duration], choose: @escaping @Sendable ([PairCandidate]) -> [PairCandidate]
    ) async throws -> [ClaimedPair]
    /// For a `respond: sync` pair of a `serial` handler, stored already running: the delivery whose
    /// pair of the same handler and key it must wait for (nil: none, it may run).
    func waitsBehind(_ pair: ClaimedPair) async throws -> Int64?
    /// Takes the next start of a handler with a `max_rate` (`RateSpacing`) for a `respond: sync` pair
    /// run outside the claim: nil when it may start now (the next start moves on by `interval`),
    /// else how long until it may.
    func takeStart(handler: String, interval: Duration) async throws -> Duration?
    /// Extends the leases of pairs this process is running; a pair no longer on that attempt is left alone.
    func renew(_ pairs: [PairLease], lease: Duration) async throws
    /// Gives a delivery's (source, id) back, so that a resend is not taken for a duplicate: for a
    /// `respond: sync` delivery whose handler failed and whose sender was answered non-2xx.
    func forget(_ seq: Int64) async throws
    /// Records how an attempt ended. False when the pair was no longer this attempt's (its lease
    /// ran out and another claim took it): nothing is recorded then.
    @discardableResult
    func finish(_ pair: ClaimedPair, outcome: PairOutcome, record: AttemptRecord) async throws -> Bool
    /// Adds (or makes due again) the pairs for `handlers` of a delivery whose handlers were
    /// resolved again, and closes the replay pair `pair`.
    func resolved(_ pair: ClaimedPair, handlers: [String]) async throws
    /// Deliveries matching `filter`, newest first, one page of at most `filter.limit`.
    func deliveries(_ filter: DeliveryFilter) async throws -> DeliveryPage
    /// One delivery with its body, headers, pairs and every attempt; nil when unknown.
    func show(_ seq: Int64) async throws -> DeliveryDetail?
    /// Makes deliveries run again: see `ReplaySelection`; a `serial` handler's replayed pair waits
    /// behind the pending ones of its key, or with `.ignore` takes its own place in the order.
    /// Returns how many deliveries.
    func replay(_ selection: ReplaySelection, order: ReplayOrder) async throws -> Int
    /// Deletes the deliveries matching `filter` (its `limit` and `cursor` ignored): with
    /// `onlyFinished`, only those whose every pair is done (retention), otherwise whatever their
    /// state. Returns how many.
    func purge(_ filter: DeliveryFilter, onlyFinished: Bool) async throws -> Int
    /// Pairs per state, and per source the oldest delivery with a pair waiting to run.
    func pairCounts() async throws -> PairCounts
    /// The pairs not done per source and state, and per source the oldest due pair (due at `now`
    /// or before): store-wide, for the metrics gauges.
    func openPairs(now: Date) async throws -> OpenPairs
    /// Yields when another process may have made work due (stored a delivery it did not claim,
    /// replayed one), so that a dispatcher claims at once rather than at its next poll. An engine
    /// with no such signal yields nothing: polling finds the work.
    var wakeups: AsyncStream<Void> { get }
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
    /// Per handler (path), the key of a `serial` handler's pair: pairs of one handler and key are
    /// claimed one at a time, in delivery order. The key starts with `block:` or `skip:`, the
    /// handler's `serial_failure`, which decides whether a failed pair holds back the next.
    public var orderingKeys: [String: String]

    public init(
        source: String, id: String, type: String, receivedAt: Date, headers: [String: String], body: [UInt8], handlers: [String],
        orderingKeys: [String: String] = [:]
    ) {
        self.source = source
        self.id = id
        self.type = type
        self.receivedAt = receivedAt
        self.headers = headers
        self.body = body
        self.handlers = handlers
        self.orderingKeys = orderingKeys
    }

    /// `orderingKeys` as the stores keep them: a JSON object, or nil when there is none.
    var storedOrderingKeys: String? { orderingKeys.isEmpty ? nil : StoredJSON.object(orderingKeys) }

    /// `orderingKeys` from what the stores keep.
    static func orderingKeys(stored: String?) -> [String: String] {
        guard let stored, let data = stored.data(using: .utf8) else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: data)) ?? [:]
    }
}

/// What `append` did.
public enum AppendResult: Sendable, Equatable {
    case accepted(seq: Int64)
    /// Already accepted as inbox delivery `seq` at `receivedAt`.
    case duplicate(seq: Int64, receivedAt: Date)
}
