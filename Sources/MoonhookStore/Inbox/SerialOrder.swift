/// What keeps a `serial` handler's pairs of one key one at a time, in delivery order, in every
/// engine and across every process sharing the store: a pair with an ordering key is claimable
/// only when no other pair of its handler and key stands before it.
///
/// - Before a pair stands every older pair of its key that is pending or running (a running pair
///   whose process died too: its lease runs out, it is claimed again, and it runs first).
/// - With `block:` keys (`serial_failure = "block"`), an older pair waiting for its retry as well:
///   a failure holds the key until the pair succeeds or is dead-lettered.
/// - With `skip:` keys, a pair waiting for its retry lets the newer ones run and waits until none
///   of its key is pending or running.
///
/// The same SQL serves SQLite and PostgreSQL; `pairs_order` indexes it.
enum SerialOrder {
    /// A pair's place in its key's order: its delivery's number, doubled; a pair replayed in order
    /// gets the newest delivery's, doubled, plus one (`ordered_at`), which puts it behind every
    /// pair there was and ahead of every delivery stored after.
    static func place(_ alias: String) -> String { "COALESCE(\(alias).ordered_at, \(alias).delivery * 2)" }

    /// SQL for `ordered_at` of a pair replayed now in order.
    static let replayPlace = "(SELECT COALESCE(MAX(seq), 0) * 2 + 1 FROM deliveries)"

    /// SQL that is true when pair `e` comes before pair `p` in their key's order.
    static func before(_ e: String, _ p: String) -> String {
        "(\(place(e)) < \(place(p)) OR (\(place(e)) = \(place(p)) AND \(e).delivery < \(p).delivery))"
    }

    /// SQL giving the oldest delivery whose pair stands before the pair `alias` (nil: none), for
    /// `show`: the same rule as `claimable`, for a pair that waits in order.
    /// With `running`, for a pair that runs as soon as nothing stands before it (a `respond: sync`
    /// pair, stored already running).
    static func waitingOn(_ alias: String, running: Bool = false) -> String {
        """
        (SELECT min(e.delivery) FROM pairs e
         WHERE \(alias).ordering_key IS NOT NULL AND \(alias).status IN (\(running ? "'running'" : "'pending', 'retry'"))
           AND e.handler = \(alias).handler AND e.ordering_key = \(alias).ordering_key AND e.delivery <> \(alias).delivery AND \(before("e", alias))
           AND (e.status IN ('pending', 'running') OR (e.status = 'retry' AND \(alias).ordering_key LIKE 'block:%')))
        """
    }

    /// SQL that is true when the pair `alias` (a row of `pairs`) may be claimed as far as its key goes.
    static func claimable(_ alias: String) -> String {
        """
        (\(alias).ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM pairs e
            WHERE e.handler = \(alias).handler AND e.ordering_key = \(alias).ordering_key AND e.delivery <> \(alias).delivery
              AND ((\(before("e", alias)) AND (e.status IN ('pending', 'running') OR (e.status = 'retry' AND \(alias).ordering_key LIKE 'block:%')))
                OR (\(alias).status = 'retry' AND \(alias).ordering_key LIKE 'skip:%' AND e.status IN ('pending', 'running')))))
        """
    }
}
