import Foundation

/// Copies what a store holds that is still to be done to another store, of any engine: every live
/// key (with what is left of its TTL) and every delivery with a pair still to run (pending, due
/// for a retry, or left running), those pairs due at once in the target. Done and dead-lettered
/// pairs stay behind (replay dead letters first to take them along).
///
/// Meant for moving from SQLite to PostgreSQL with the servers stopped (a pair a running server
/// holds would run on both sides). Copying again skips what the target has already: keys are
/// overwritten with the same values, deliveries are deduplicated by (source, id).
public enum StoreCopy {
    public struct Summary: Sendable, Equatable {
        public var keys = 0
        public var deliveries = 0
        public var pairs = 0
        /// Deliveries the target had already (an earlier copy).
        public var present = 0
    }

    /// How long the target remembers a copied delivery's id for deduplication: as long as it keeps
    /// the delivery (the retention sweep decides), so a copy run twice stores nothing twice.
    static let retention = Duration.seconds(100 * 365 * 86400)

    public static func run(from source: any Store, to target: any Store, clock: StoreClock = .system) async throws -> Summary {
        var summary = Summary()
        var cursor: KeyValueEntry?
        while true {
            let page = try await source.entries(after: cursor, limit: 500)
            for entry in page {
                var ttl: Duration?
                if let expiresAt = entry.expiresAt {
                    let left = expiresAt.timeIntervalSince(clock.now())
                    if left <= 0 { continue }
                    ttl = .milliseconds(Int64((left * 1000).rounded(.up)))
                }
                try await target.set(entry.namespace, entry.key, entry.value, ttl: ttl)
                summary.keys += 1
            }
            guard page.count == 500 else { break }
            cursor = page.last
        }

        // Oldest first, so that the target numbers them in the order they came.
        var unfinished: [Int64] = []
        var page = try await source.deliveries(DeliveryFilter(limit: 500))
        while true {
            for delivery in page.deliveries {
                let waiting = (delivery.statuses[.pending] ?? 0) + (delivery.statuses[.retry] ?? 0) + (delivery.statuses[.running] ?? 0)
                if waiting > 0 { unfinished.append(delivery.seq) }
            }
            guard let next = page.next else { break }
            page = try await source.deliveries(DeliveryFilter(limit: 500, cursor: next))
        }
        for seq in unfinished.reversed() {
            guard let detail = try await source.show(seq) else { continue }
            var delivery = detail.delivery
            delivery.seq = 0
            delivery.handlers = detail.pairs.filter { $0.status == .pending || $0.status == .retry || $0.status == .running }.map(\.handler)
            if delivery.handlers.isEmpty { continue }
            switch try await target.append(delivery, retention: retention, claimed: false, lease: .seconds(1)) {
            case .accepted:
                summary.deliveries += 1
                summary.pairs += delivery.handlers.count
            case .duplicate:
                summary.present += 1
            }
        }
        return summary
    }
}
