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
    /// SQL that is true when the pair `alias` (a row of `pairs`) may be claimed as far as its key goes.
    static func claimable(_ alias: String) -> String {
        """
        (\(alias).ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM pairs e
            WHERE e.handler = \(alias).handler AND e.ordering_key = \(alias).ordering_key AND e.delivery <> \(alias).delivery
              AND ((e.delivery < \(alias).delivery AND (e.status IN ('pending', 'running') OR (e.status = 'retry' AND \(alias).ordering_key LIKE 'block:%')))
                OR (\(alias).status = 'retry' AND \(alias).ordering_key LIKE 'skip:%' AND e.status IN ('pending', 'running')))))
        """
    }
}
