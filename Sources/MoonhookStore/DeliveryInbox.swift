import Foundation

/// The inbox of durable delivery: every verified delivery, written before the sender gets its 2xx,
/// and the state of each (delivery, handler) pair. Declared here so that the receiver, the
/// dispatcher and the stores agree on it; the SQLite and PostgreSQL implementations come with
/// durable delivery (retries, dead letters, replay), which moonhook does not have yet.
public protocol DeliveryInbox: Sendable {
    /// Stores `deliveries` durably in one transaction (group commit). For each, whether it was new:
    /// false for a duplicate of a (source, id) already accepted within the retention window.
    func append(_ deliveries: [InboxDelivery]) async throws -> [Bool]
    /// Leases up to `limit` due (delivery, handler) pairs for `lease`; a lease that runs out (the
    /// process died) makes its pair due again.
    func claimDue(limit: Int, lease: Duration) async throws -> [InboxTask]
    /// Records how one attempt ended.
    func finish(_ task: InboxTask, outcome: InboxOutcome) async throws
}

/// A verified delivery as stored.
public struct InboxDelivery: Sendable, Equatable {
    public var source: String
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

/// One (delivery, handler) pair to run, and which attempt this is (1 for the first).
public struct InboxTask: Sendable, Equatable {
    public var delivery: InboxDelivery
    public var handler: String
    public var attempt: Int

    public init(delivery: InboxDelivery, handler: String, attempt: Int) {
        self.delivery = delivery
        self.handler = handler
        self.attempt = attempt
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
