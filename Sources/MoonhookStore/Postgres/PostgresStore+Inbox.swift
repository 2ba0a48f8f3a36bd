import Foundation
import NIOCore
import PostgresNIO

extension PostgresStore {
    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// One `append` waiting for its batch.
    struct AppendItem: Sendable {
        var now: Int64
        var delivery: InboxDelivery
        var retention: Int64
        var claimedUntil: Int64?
    }

    public func append(_ delivery: InboxDelivery, retention: Duration, claimed: Bool, lease: Duration) async throws -> AppendResult {
        let now = now()
        var delivery = delivery
        // The same replacement every time, so that deduplication still sees one id.
        delivery.id = Self.text(delivery.id)
        delivery.type = Self.text(delivery.type)
        let result = try await appends.submit(
            AppendItem(now: now, delivery: delivery, retention: retention.totalMilliseconds, claimedUntil: claimed ? now + lease.totalMilliseconds : nil)
        ).get()
        if case .accepted = result { metrics.appends.increment() }
        return result
    }

    /// Stores a batch with one statement: deliveries and their pairs, skipping (source, id)s that
    /// are stored already or repeated within the batch (`ON CONFLICT DO NOTHING` over the batch
    /// made distinct first). Only items that stored nothing are looked at one by one.
    ///
    /// Once that statement has committed, each item gets its own result: an item looked at again
    /// that fails fails alone, and never turns a delivery already stored into an error (which the
    /// batcher would retry, finding it a duplicate of itself).
    func appendBatch(_ items: [AppendItem]) async throws -> [Result<AppendResult, StoreError>] {
        let stored = try await insert(items, on: nil)
        var due = items.contains { $0.claimedUntil == nil && stored[DeliveryKey(source: $0.delivery.source, id: $0.delivery.id)] != nil }
        var results: [Result<AppendResult, StoreError>] = []
        var taken: Set<Int64> = []
        for item in items {
            let key = DeliveryKey(source: item.delivery.source, id: item.delivery.id)
            if let seq = stored[key], !taken.contains(seq) {
                taken.insert(seq)
                results.append(.success(.accepted(seq: seq)))
                continue
            }
            do {
                let result = try await appendAgain(item)
                if case .accepted = result, item.claimedUntil == nil { due = true }
                results.append(.success(result))
            } catch {
                metrics.writeErrors.increment()
                results.append(.failure(Self.storeError(error)))
            }
        }
        if due { notifyDue() }
        return results
    }

    /// `text` as PostgreSQL's text type takes it: a NUL character (which it refuses) becomes U+FFFD.
    static func text(_ text: String) -> String {
        text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
    }

    struct DeliveryKey: Hashable {
        var source: String
        var id: String
    }

    /// Inserts `items` with one statement (on `connection`, or on the pool); returns the number of
    /// each one stored, by (source, id).
    private func insert(_ items: [AppendItem], on connection: PostgresConnection?) async throws -> [DeliveryKey: Int64] {
        let query: PostgresQuery = """
            WITH input AS (
                SELECT * FROM unnest(\(items.indices.map { Int64($0) })::int8[], \(items.map(\.delivery.source))::text[], \(items.map(\.delivery.id))::text[],
                    \(items.map(\.delivery.type))::text[], \(items.map { Self.milliseconds($0.delivery.receivedAt) })::int8[],
                    \(items.map { StoredJSON.object($0.delivery.headers) })::text[], \(items.map { ByteBuffer(bytes: $0.delivery.body) })::bytea[],
                    \(items.map { StoredJSON.array($0.delivery.handlers) })::text[], \(items.map { $0.claimedUntil ?? 0 })::int8[],
                    \(items.map { $0.delivery.storedOrderingKeys ?? "" })::text[])
                    AS t(ord, source, id, type, received_at, headers, body, handlers, claimed_until, ordering_key)
            ), fresh AS (
                SELECT DISTINCT ON (source, id) * FROM input ORDER BY source, id, ord
            ), stored AS (
                INSERT INTO deliveries (source, id, type, received_at, headers, body, ordering_key)
                SELECT source, id, type, received_at, headers, body, NULLIF(ordering_key, '') FROM fresh ORDER BY ord
                ON CONFLICT (source, id) WHERE dedup DO NOTHING
                RETURNING seq, source, id
            ), paired AS (
                INSERT INTO pairs (delivery, handler, source, status, attempts, due_at, lease_until, updated_at, ordering_key)
                SELECT s.seq, h.handler, s.source,
                       CASE WHEN f.claimed_until = 0 THEN 'pending' ELSE 'running' END,
                       CASE WHEN f.claimed_until = 0 THEN 0 ELSE 1 END,
                       f.received_at, NULLIF(f.claimed_until, 0), f.received_at, NULLIF(f.ordering_key, '')::jsonb ->> h.handler
                FROM stored s JOIN fresh f ON f.source = s.source AND f.id = s.id
                CROSS JOIN LATERAL jsonb_array_elements_text(f.handlers::jsonb) AS h(handler)
            )
            SELECT seq, source, id FROM stored
            """
        let rows: [PostgresRow]
        if let connection {
            rows = try await connection.query(query, logger: logger).collect()
        } else {
            rows = try await run("storing deliveries", query)
        }
        var stored: [DeliveryKey: Int64] = [:]
        for row in rows {
            let (seq, source, id) = try row.decode((Int64, String, String).self)
            stored[DeliveryKey(source: source, id: id)] = seq
        }
        return stored
    }

    /// An item whose (source, id) was taken: a duplicate while the delivery holding it is within
    /// the retention window; past it, that delivery gives the id back and this one is stored.
    private func appendAgain(_ item: AppendItem) async throws -> AppendResult {
        try await transaction("storing a delivery") { connection in
            let rows = try await connection.query(
                "SELECT seq, received_at FROM deliveries WHERE source = \(item.delivery.source) AND id = \(item.delivery.id) AND dedup FOR UPDATE",
                logger: self.logger
            ).collect()
            if let row = rows.first {
                let (seq, received) = try row.decode((Int64, Int64).self)
                if received >= item.now - item.retention { return .duplicate(seq: seq, receivedAt: Self.date(received)) }
                try await connection.query("UPDATE deliveries SET dedup = false WHERE seq = \(seq)", logger: self.logger)
            }
            let key = DeliveryKey(source: item.delivery.source, id: item.delivery.id)
            if let seq = try await self.insert([item], on: connection)[key] { return .accepted(seq: seq) }
            // Another process stored the same (source, id) since the look above: a duplicate of it.
            let again = try await connection.query(
                "SELECT seq, received_at FROM deliveries WHERE source = \(item.delivery.source) AND id = \(item.delivery.id) AND dedup",
                logger: self.logger
            ).collect()
            guard let row = again.first else { throw StoreError(.database, "a delivery was neither stored nor found") }
            let (seq, received) = try row.decode((Int64, Int64).self)
            return .duplicate(seq: seq, receivedAt: Self.date(received))
        }
    }

    public func takeStart(handler: String, interval: Duration) async throws -> Duration? {
        let now = now()
        return try await transaction("taking a handler's start") { connection in
            // The claims' lock: a start taken here and one taken by a claim never cross.
            try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresMigrations.lockKey + 2))", logger: self.logger).collect()
            var slot: Int64?
            for row in try await connection.query("SELECT next_at FROM rate_slots WHERE handler = \(handler)", logger: self.logger).collect() {
                slot = try row.decode(Int64.self)
            }
            let taken = RateSpacing.take(handler: handler, slot: slot, interval: interval, now: now)
            if let next = taken.next {
                try await connection.query(
                    "INSERT INTO rate_slots (handler, next_at) VALUES (\(handler), \(next)) ON CONFLICT (handler) DO UPDATE SET next_at = excluded.next_at",
                    logger: self.logger)
            }
            return taken.wait
        }
    }

    public func waitsBehind(_ pair: ClaimedPair) async throws -> Int64? {
        let rows = try await run(
            "looking at a serial key",
            """
            SELECT \(unescaped: SerialOrder.waitingOn("pairs", running: true)) FROM pairs
            WHERE delivery = \(pair.delivery.seq) AND handler = \(pair.handler)
            """)
        return try rows.first?.decode(Int64?.self) ?? nil
    }

    public func renew(_ pairs: [PairLease], lease: Duration) async throws {
        if pairs.isEmpty { return }
        let until = now() + lease.totalMilliseconds
        try await run(
            "renewing leases",
            """
            UPDATE pairs SET lease_until = \(until)
            FROM unnest(\(pairs.map(\.delivery))::int8[], \(pairs.map(\.handler))::text[], \(pairs.map { Int64($0.attempt) })::int8[])
                AS held(delivery, handler, attempt)
            WHERE pairs.delivery = held.delivery AND pairs.handler = held.handler AND pairs.attempts = held.attempt
              AND pairs.status = 'running'
            """)
    }

    public func forget(_ seq: Int64) async throws {
        try await run("giving a delivery id back", "UPDATE deliveries SET dedup = false WHERE seq = \(seq)")
    }

    public func claim(
        candidates: Int, lease: Duration, intervals: [String: Duration], choose: @escaping @Sendable ([PairCandidate]) -> [PairCandidate]
    ) async throws -> [ClaimedPair] {
        let now = now()
        let perHandler = Int64(max(1, candidates))
        return try await transaction("claiming pairs") { connection in
            // One claim at a time store-wide, so that two processes counting the pairs running
            // for a limited source or handler cannot both take its last slot.
            try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresMigrations.lockKey + 2))", logger: self.logger).collect()
            // At most `candidates` per handler, taken in turns (every handler's oldest, then every
            // handler's second oldest, ...), so that one handler's backlog cannot crowd the others
            // out; rows another process is claiming right now are skipped.
            let rows = try await connection.query(
                """
                SELECT p.delivery, p.source, p.handler, p.kind, p.status = 'running' FROM (
                    SELECT handler FROM pairs WHERE status IN ('pending', 'retry') AND due_at <= \(now)
                    UNION
                    SELECT handler FROM pairs WHERE status = 'running' AND lease_until <= \(now)
                ) h
                CROSS JOIN LATERAL (
                    SELECT delivery, source, handler, kind, status, CASE WHEN status = 'running' THEN lease_until ELSE due_at END AS due
                    FROM pairs
                    WHERE pairs.handler = h.handler
                      AND ((status IN ('pending', 'retry') AND due_at <= \(now)) OR (status = 'running' AND lease_until <= \(now)))
                      AND \(unescaped: SerialOrder.claimable("pairs"))
                    ORDER BY due, delivery
                    LIMIT \(perHandler)
                    FOR UPDATE SKIP LOCKED
                ) p
                ORDER BY row_number() OVER (PARTITION BY p.handler ORDER BY p.due, p.delivery), p.due, p.delivery
                LIMIT \(perHandler * 4)
                """,
                logger: self.logger
            ).collect()
            var offered: [PairCandidate] = []
            for row in rows {
                let (delivery, source, handler, kind, abandoned) = try row.decode((Int64, String, String, String, Bool).self)
                offered.append(PairCandidate(delivery: delivery, source: source, handler: handler, kind: PairKind(rawValue: kind) ?? .handler, abandoned: abandoned))
            }
            if !offered.isEmpty {
                let running = try await connection.query(
                    "SELECT source, handler, count(*)::int8 FROM pairs WHERE status = 'running' AND lease_until > \(now) GROUP BY source, handler",
                    logger: self.logger
                ).collect()
                var counts = RunningCounts()
                for row in running {
                    let (source, handler, count) = try row.decode((String, String, Int64).self)
                    counts.add(source: source, handler: handler, count: Int(count))
                }
                counts.annotate(&offered)
            }
            var chosen = offered.isEmpty ? [] : choose(offered)
            if chosen.contains(where: { intervals[$0.handler] != nil }) {
                let rated = Array(Set(chosen.map(\.handler).filter { intervals[$0] != nil })).sorted()
                var slots: [String: Int64] = [:]
                for row in try await connection.query("SELECT handler, next_at FROM rate_slots WHERE handler = ANY(\(rated)::text[])", logger: self.logger).collect() {
                    let (handler, next) = try row.decode((String, Int64).self)
                    slots[handler] = next
                }
                let spaced = RateSpacing.admit(chosen, slots: slots, intervals: intervals, now: now)
                chosen = spaced.admitted
                let changed = spaced.slots.filter { slots[$0.key] != $0.value }.sorted { $0.key < $1.key }
                if !changed.isEmpty {
                    try await connection.query(
                        """
                        INSERT INTO rate_slots (handler, next_at) SELECT * FROM unnest(\(changed.map(\.key))::text[], \(changed.map(\.value))::int8[])
                        ON CONFLICT (handler) DO UPDATE SET next_at = excluded.next_at
                        """,
                        logger: self.logger)
                }
            }
            if chosen.isEmpty { return [] }
            // Abandoned at its deadline: lease nothing that nobody would run.
            try Task.checkCancellation()
            let leased = try await connection.query(
                """
                UPDATE pairs SET status = 'running', attempts = pairs.attempts + 1, lease_until = \(now + lease.totalMilliseconds), updated_at = \(now),
                    -- An attempt its process never finished counts as failed (the right side reads the old row).
                    failures = pairs.failures + (CASE WHEN pairs.status = 'running' THEN 1 ELSE 0 END),
                    last_error = CASE WHEN pairs.status = 'running'
                        THEN 'attempt ' || pairs.attempts || ' did not finish: the process running it ended' ELSE pairs.last_error END
                FROM unnest(\(chosen.map(\.delivery))::int8[], \(chosen.map(\.handler))::text[]) AS chosen(delivery, handler)
                WHERE pairs.delivery = chosen.delivery AND pairs.handler = chosen.handler
                RETURNING pairs.delivery, pairs.handler, pairs.kind, pairs.attempts::int8, pairs.failures::int8
                """,
                logger: self.logger
            ).collect()
            var taken: [(delivery: Int64, handler: String, kind: String, attempts: Int64, failures: Int64)] = []
            for row in leased {
                let (delivery, handler, kind, attempts, failures) = try row.decode((Int64, String, String, Int64, Int64).self)
                taken.append((delivery, handler, kind, attempts, failures))
            }
            let deliveries = try await self.load(Set(taken.map(\.delivery)), on: connection)
            return taken.compactMap { pair -> ClaimedPair? in
                guard let delivery = deliveries[pair.delivery] else { return nil }
                let abandoned = chosen.contains { $0.delivery == pair.delivery && $0.handler == pair.handler && $0.abandoned }
                return ClaimedPair(
                    delivery: delivery, handler: pair.handler, kind: PairKind(rawValue: pair.kind) ?? .handler, attempt: Int(pair.attempts),
                    failures: Int(pair.failures), abandoned: abandoned)
            }
        }
    }

    static let deliveryColumns = "seq, source, id, type, received_at, headers, body, ordering_key"

    /// The deliveries numbered `seqs`, by number.
    func load(_ seqs: Set<Int64>, on connection: PostgresConnection) async throws -> [Int64: InboxDelivery] {
        if seqs.isEmpty { return [:] }
        let rows = try await connection.query(
            "SELECT \(unescaped: Self.deliveryColumns) FROM deliveries WHERE seq = ANY(\(Array(seqs))::int8[])", logger: logger
        ).collect()
        var result: [Int64: InboxDelivery] = [:]
        for row in rows {
            let delivery = try Self.delivery(from: row)
            result[delivery.seq] = delivery
        }
        return result
    }

    /// A row of `deliveryColumns`.
    static func delivery(from row: PostgresRow) throws -> InboxDelivery {
        let (seq, source, id, type, received, headerText, body, orderingKey) = try row.decode(
            (Int64, String, String, String, Int64, String, ByteBuffer, String?).self)
        let headers = (try? JSONDecoder().decode([String: String].self, from: Data(headerText.utf8))) ?? [:]
        var delivery = InboxDelivery(
            source: source, id: id, type: type, receivedAt: date(received), headers: headers, body: Array(body.readableBytesView), handlers: [],
            orderingKeys: InboxDelivery.orderingKeys(stored: orderingKey))
        delivery.seq = seq
        return delivery
    }

    /// One `finish` waiting for its batch.
    struct FinishItem: Sendable {
        var pair: ClaimedPair
        var status: String
        var due: Int64
        var error: String?
        var failures: Int
        var startedAt: Int64
        var finishedAt: Int64
        var logs: String
        /// The dead-letter alert to append once the outcome is recorded.
        var alert: AppendItem? = nil
    }

    public func finish(_ pair: ClaimedPair, outcome: PairOutcome, record: AttemptRecord) async throws -> Bool {
        let now = now()
        let (due, failures) = outcome.recorded(for: pair, now: now)
        // An alert of this death stored at any time before is this one.
        let alert = outcome.alert.map { AppendItem(now: now, delivery: $0, retention: now, claimedUntil: nil) }
        return try await finishes.submit(
            FinishItem(
                pair: pair, status: outcome.status.rawValue, due: due, error: outcome.error.map(Self.text), failures: failures, startedAt: Self.milliseconds(record.startedAt),
                finishedAt: Self.milliseconds(record.finishedAt), logs: AttemptLogLine.encode(record.logs), alert: alert))
    }

    /// Records a batch of outcomes with one statement: the pairs still running as the attempt that
    /// finished are updated, and an attempt row written for each. The others (their lease ran out
    /// and another claim took them) are refused: false.
    ///
    /// Dead-letter alerts are appended in the same transaction, for the outcomes recorded.
    func finishBatch(_ items: [FinishItem]) async throws -> [Bool] {
        let query: PostgresQuery = """
            WITH v AS (
                SELECT * FROM unnest(\(items.map(\.pair.delivery.seq))::int8[], \(items.map(\.pair.handler))::text[], \(items.map(\.status))::text[],
                    \(items.map(\.due))::int8[], \(items.map { $0.error ?? "" })::text[], \(items.map { Int64($0.failures) })::int8[],
                    \(items.map { Int64($0.pair.attempt) })::int8[], \(items.map(\.startedAt))::int8[], \(items.map(\.finishedAt))::int8[],
                    \(items.map(\.logs))::text[])
                    AS v(delivery, handler, status, due, error, failures, attempt, started, finished, logs)
            ), updated AS (
                UPDATE pairs p SET status = v.status, due_at = v.due, last_error = NULLIF(v.error, ''), failures = v.failures,
                    lease_until = NULL, updated_at = v.finished
                FROM v WHERE p.delivery = v.delivery AND p.handler = v.handler AND p.status = 'running' AND p.attempts = v.attempt
                RETURNING p.delivery, p.handler, p.attempts, p.status, p.last_error
            ), recorded AS (
                INSERT INTO attempts (delivery, handler, attempt, started_at, finished_at, outcome, error, logs)
                SELECT u.delivery, u.handler, u.attempts, v.started, v.finished, u.status, u.last_error, v.logs
                FROM updated u JOIN v ON v.delivery = u.delivery AND v.handler = u.handler
                ON CONFLICT DO NOTHING
            )
            SELECT delivery, handler FROM updated
            """
        @Sendable func recorded(_ rows: [PostgresRow]) throws -> [Bool] {
            var mine: Set<PairLease> = []
            for row in rows {
                let (delivery, handler) = try row.decode((Int64, String).self)
                mine.insert(PairLease(delivery: delivery, handler: handler, attempt: 0))
            }
            return items.map { mine.contains(PairLease(delivery: $0.pair.delivery.seq, handler: $0.pair.handler, attempt: 0)) }
        }
        guard items.contains(where: { $0.alert != nil }) else { return try recorded(try await run("recording attempts", query)) }
        let result = try await transaction("recording attempts and dead-letter alerts") { connection in
            let result = try recorded(try await connection.query(query, logger: self.logger).collect())
            let alerts = zip(items, result).compactMap { item, recorded in recorded ? item.alert : nil }
            if !alerts.isEmpty { _ = try await self.insert(alerts, on: connection) }
            return result
        }
        notifyDue()
        return result
    }

    public func resolved(_ pair: ClaimedPair, handlers: [String]) async throws {
        let now = now()
        try await transaction("resolving handlers") { connection in
            if !handlers.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO pairs (delivery, handler, source, status, due_at, updated_at, ordering_key, ordered_at)
                    SELECT \(pair.delivery.seq), handler, \(pair.delivery.source), 'pending', \(now), \(now), NULLIF(key, ''),
                           (SELECT ordered_at FROM pairs WHERE delivery = \(pair.delivery.seq) AND handler = '')
                    FROM unnest(\(handlers)::text[], \(handlers.map { pair.delivery.orderingKeys[$0] ?? "" })::text[]) AS h(handler, key)
                    ON CONFLICT (delivery, handler) DO UPDATE SET status = 'pending', due_at = \(now), failures = 0, lease_until = NULL, updated_at = \(now),
                        ordered_at = excluded.ordered_at
                    WHERE pairs.status <> 'running'
                    """,
                    logger: self.logger)
            }
            try await connection.query(
                "DELETE FROM pairs WHERE delivery = \(pair.delivery.seq) AND kind = 'replay' AND status = 'running' AND attempts = \(Int64(pair.attempt))",
                logger: self.logger)
        }
        if !handlers.isEmpty { notifyDue() }
    }
}
