import Foundation
import SQLiteNIO

extension SQLiteStore {
    static func milliseconds(_ date: Date) -> Int { Int((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ milliseconds: Int) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// One `append` waiting for its transaction.
    struct AppendItem: Sendable {
        var now: Int
        var delivery: InboxDelivery
        var headers: String
        var handlers: String
        var retention: Int
        var claimed: Bool
        var lease: Int
    }

    public func append(_ delivery: InboxDelivery, retention: Duration, claimed: Bool, lease: Duration) async throws -> AppendResult {
        let now = now()
        let item = AppendItem(now: Int(now),
            delivery: delivery, headers: StoredJSON.object(delivery.headers), handlers: StoredJSON.array(delivery.handlers), retention: Int(retention.totalMilliseconds), claimed: claimed, lease: Int(lease.totalMilliseconds))
        let result = try await writer.perform(kind: "append", item: item) { writer, items in
            try await Self.append(items, on: writer)
        }
        if case .accepted = result { metrics.appends.increment() }
        return result
    }

    /// Stores a batch of deliveries with one multi-row statement (a trigger adds their pairs); only
    /// ids that collide are looked at one by one.
    static func append(_ items: [AppendItem], on writer: isolated WriterThread) async throws -> [AppendResult] {
        let connection = writer.connection
        var results = [AppendResult?](repeating: nil, count: items.count)
        for chunk in stride(from: 0, to: items.count, by: 500).map({ $0..<min($0 + 500, items.count) }) {
            var binds: [SQLiteData] = []
            for item in items[chunk] { binds += deliveryBinds(item) }
            let rows = try await connection.query(
                "INSERT INTO deliveries (source, id, type, received_at, headers, body, handlers, claimed_until, ordering_key) VALUES "
                    + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?)", count: chunk.count).joined(separator: ", ")
                    + " ON CONFLICT (source, id) WHERE dedup = 1 DO NOTHING RETURNING seq, source, id",
                binds)
            var inserted: [String: Int] = [:]
            for row in rows {
                guard let seq = row.column("seq")?.integer, let source = row.column("source")?.string, let id = row.column("id")?.string else { continue }
                inserted[source + "\u{0}" + id] = seq
            }
            for index in chunk {
                // RETURNING rows come in no set order: matched by (source, id); the first item with
                // a key takes its row, a second one with the same key is looked up below.
                if let seq = inserted.removeValue(forKey: items[index].delivery.source + "\u{0}" + items[index].delivery.id) {
                    results[index] = .accepted(seq: Int64(seq))
                }
            }
        }
        for index in items.indices where results[index] == nil {
            let item = items[index]
            let existing = try await connection.query(
                "SELECT seq, received_at FROM deliveries WHERE source = ?1 AND id = ?2 AND dedup = 1",
                [.text(item.delivery.source), .text(item.delivery.id)])
            guard let row = existing.first, let seq = row.column("seq")?.integer, let received = row.column("received_at")?.integer else {
                throw StoreError(.database, "a delivery was neither stored nor found")
            }
            if received >= item.now - item.retention {
                results[index] = .duplicate(seq: Int64(seq), receivedAt: Self.date(received))
                continue
            }
            // Accepted longer ago than the retention window: this one counts as new. Should the
            // insert fail after the old row gave its id back, the sender is answered 503 and its
            // resend is stored then: the old row was past deduplicating anyway.
            _ = try await connection.query("UPDATE deliveries SET dedup = 0 WHERE seq = ?1", [.integer(seq)])
            let rows = try await connection.query(
                "INSERT INTO deliveries (source, id, type, received_at, headers, body, handlers, claimed_until, ordering_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                deliveryBinds(item))
            guard let stored = rows.first?.column("seq")?.integer else { throw StoreError(.database, "a delivery was not stored") }
            results[index] = .accepted(seq: Int64(stored))
        }
        return results.map { $0! }
    }

    private static func deliveryBinds(_ item: AppendItem) -> [SQLiteData] {
        [
            .text(item.delivery.source), .text(item.delivery.id), .text(item.delivery.type), .integer(milliseconds(item.delivery.receivedAt)),
            .text(item.headers), .blob(ByteBuffer(bytes: item.delivery.body)), .text(item.handlers),
            item.claimed ? .integer(item.now + item.lease) : .null,
            item.delivery.storedOrderingKeys.map { .text($0) } ?? .null,
        ]
    }

    public func takeStart(handler: String, interval: Duration) async throws -> Duration? {
        let clock = clock
        return try await writer.perform { connection in
            let now = Int64(clock.milliseconds())
            let slot = try await connection.query("SELECT next_at FROM rate_slots WHERE handler = ?1", [.text(handler)]).first?.column("next_at")?.integer
            let taken = RateSpacing.take(handler: handler, slot: slot.map(Int64.init), interval: interval, now: now)
            if let next = taken.next {
                _ = try await connection.query(
                    "INSERT INTO rate_slots (handler, next_at) VALUES (?1, ?2) ON CONFLICT (handler) DO UPDATE SET next_at = excluded.next_at",
                    [.text(handler), .integer(Int(next))])
            }
            return taken.wait
        }
    }

    public func waitsBehind(_ pair: ClaimedPair) async throws -> Int64? {
        let rows = try await query(
            "SELECT \(SerialOrder.waitingOn("pairs", running: true)) AS waiting_on FROM pairs WHERE delivery = ?1 AND handler = ?2",
            [.integer(Int(pair.delivery.seq)), .text(pair.handler)])
        return rows.first?.column("waiting_on")?.integer.map(Int64.init)
    }

    public func renew(_ pairs: [PairLease], lease: Duration) async throws {
        for chunk in stride(from: 0, to: pairs.count, by: 300).map({ pairs[$0..<min($0 + 300, pairs.count)] }) {
            let until = Int(now() + lease.totalMilliseconds)
            try await writer.perform { connection in
                var binds: [SQLiteData] = [.integer(until)]
                var values: [String] = []
                for pair in chunk {
                    values.append("(?\(binds.count + 1), ?\(binds.count + 2), ?\(binds.count + 3))")
                    binds += [.integer(Int(pair.delivery)), .text(pair.handler), .integer(pair.attempt)]
                }
                _ = try await connection.query(
                    """
                    UPDATE pairs SET lease_until = ?1 FROM (VALUES \(values.joined(separator: ", "))) AS held
                    WHERE pairs.delivery = held.column1 AND pairs.handler = held.column2 AND pairs.attempts = held.column3
                      AND pairs.status = 'running'
                    """,
                    binds)
            }
        }
    }

    public func forget(_ seq: Int64) async throws {
        try await writer.perform { connection in
            _ = try await connection.query("UPDATE deliveries SET dedup = 0 WHERE seq = ?1", [.integer(Int(seq))])
        }
    }

    public func claim(
        candidates: Int, lease: Duration, intervals: [String: Duration], choose: @escaping @Sendable ([PairCandidate]) -> [PairCandidate]
    ) async throws -> [ClaimedPair] {
        let clock = clock
        return try await writer.perform { connection in
            let now = Int(clock.milliseconds())
            // At most `candidates` per handler, taken in turns (every handler's oldest, then every
            // handler's second oldest, ...), so that one handler's backlog cannot crowd the others out.
            let rows = try await connection.query(
                """
                SELECT delivery, source, handler, kind, abandoned FROM (
                    SELECT delivery, source, handler, kind, due, abandoned,
                           ROW_NUMBER() OVER (PARTITION BY handler ORDER BY due, delivery) AS position
                    FROM (
                        SELECT delivery, source, handler, kind, due_at AS due, 0 AS abandoned FROM pairs
                        WHERE status IN ('pending', 'retry') AND due_at <= ?1 AND \(SerialOrder.claimable("pairs"))
                        UNION ALL
                        SELECT delivery, source, handler, kind, lease_until AS due, 1 AS abandoned FROM pairs
                        WHERE status = 'running' AND lease_until <= ?1 AND \(SerialOrder.claimable("pairs"))
                    )
                )
                WHERE position <= ?2 ORDER BY position, due, delivery LIMIT ?3
                """,
                [.integer(now), .integer(candidates), .integer(candidates * 4)])
            var offered = rows.compactMap { row -> PairCandidate? in
                guard let delivery = row.column("delivery")?.integer, let source = row.column("source")?.string,
                    let handler = row.column("handler")?.string
                else { return nil }
                let kind = row.column("kind")?.string.flatMap(PairKind.init(rawValue:)) ?? .handler
                return PairCandidate(delivery: Int64(delivery), source: source, handler: handler, kind: kind, abandoned: row.column("abandoned")?.integer == 1)
            }
            if !offered.isEmpty {
                let running = try await connection.query(
                    "SELECT source, handler, count(*) AS n FROM pairs WHERE status = 'running' AND lease_until > ?1 GROUP BY source, handler",
                    [.integer(now)])
                var counts = RunningCounts()
                for row in running {
                    if let source = row.column("source")?.string, let handler = row.column("handler")?.string, let count = row.column("n")?.integer {
                        counts.add(source: source, handler: handler, count: count)
                    }
                }
                counts.annotate(&offered)
            }
            var chosen = offered.isEmpty ? [] : choose(offered)
            if chosen.contains(where: { intervals[$0.handler] != nil }) {
                let rated = Array(Set(chosen.map(\.handler).filter { intervals[$0] != nil })).sorted()
                let rows = try await connection.query(
                    "SELECT handler, next_at FROM rate_slots WHERE handler IN (\(rated.indices.map { "?\($0 + 1)" }.joined(separator: ", ")))",
                    rated.map { .text($0) })
                var slots: [String: Int64] = [:]
                for row in rows {
                    if let handler = row.column("handler")?.string, let next = row.column("next_at")?.integer { slots[handler] = Int64(next) }
                }
                let spaced = RateSpacing.admit(chosen, slots: slots, intervals: intervals, now: Int64(now))
                chosen = spaced.admitted
                for (handler, next) in spaced.slots where slots[handler] != next {
                    _ = try await connection.query(
                        "INSERT INTO rate_slots (handler, next_at) VALUES (?1, ?2) ON CONFLICT (handler) DO UPDATE SET next_at = excluded.next_at",
                        [.text(handler), .integer(Int(next))])
                }
            }
            if chosen.isEmpty { return [] }
            var binds: [SQLiteData] = [.integer(now + Int(lease.totalMilliseconds)), .integer(now)]
            var values: [String] = []
            for candidate in chosen {
                values.append("(?\(binds.count + 1), ?\(binds.count + 2))")
                binds.append(.integer(Int(candidate.delivery)))
                binds.append(.text(candidate.handler))
            }
            let leased = try await connection.query(
                """
                UPDATE pairs SET status = 'running', attempts = attempts + 1, lease_until = ?1, updated_at = ?2,
                    -- An attempt its process never finished counts as failed (the right side reads the old row).
                    failures = failures + (CASE WHEN pairs.status = 'running' THEN 1 ELSE 0 END),
                    last_error = CASE WHEN pairs.status = 'running'
                        THEN 'attempt ' || pairs.attempts || ' did not finish: the process running it ended' ELSE pairs.last_error END
                FROM (VALUES \(values.joined(separator: ", "))) AS chosen
                WHERE pairs.delivery = chosen.column1 AND pairs.handler = chosen.column2
                RETURNING pairs.delivery AS delivery, pairs.handler AS handler, pairs.kind AS kind, pairs.attempts AS attempts, pairs.failures AS failures
                """,
                binds)
            let deliveries = try await Self.load(Set(leased.compactMap { $0.column("delivery")?.integer }), on: connection)
            return leased.compactMap { row -> ClaimedPair? in
                guard let seq = row.column("delivery")?.integer, let delivery = deliveries[seq], let handler = row.column("handler")?.string,
                    let attempts = row.column("attempts")?.integer, let failures = row.column("failures")?.integer
                else { return nil }
                let abandoned = chosen.contains { $0.delivery == seq && $0.handler == handler && $0.abandoned }
                let kind = row.column("kind")?.string.flatMap(PairKind.init(rawValue:)) ?? .handler
                return ClaimedPair(delivery: delivery, handler: handler, kind: kind, attempt: attempts, failures: failures, abandoned: abandoned)
            }
        }
    }

    /// The deliveries numbered `seqs`, by number.
    static func load(_ seqs: Set<Int>, on connection: SQLiteConnection) async throws -> [Int: InboxDelivery] {
        if seqs.isEmpty { return [:] }
        let list = seqs.sorted()
        let rows = try await connection.query(
            "SELECT seq, source, id, type, received_at, headers, body, ordering_key FROM deliveries WHERE seq IN (\(list.indices.map { "?\($0 + 1)" }.joined(separator: ", ")))",
            list.map { .integer($0) })
        var result: [Int: InboxDelivery] = [:]
        for row in rows {
            guard let seq = row.column("seq")?.integer else { continue }
            result[seq] = delivery(from: row)
        }
        return result
    }

    static func delivery(from row: SQLiteRow) -> InboxDelivery? {
        guard let seq = row.column("seq")?.integer, let source = row.column("source")?.string, let id = row.column("id")?.string,
            let type = row.column("type")?.string, let received = row.column("received_at")?.integer,
            let headerText = row.column("headers")?.string
        else { return nil }
        let headers = (try? JSONDecoder().decode([String: String].self, from: Data(headerText.utf8))) ?? [:]
        var body: [UInt8] = []
        switch row.column("body") {
        case .blob(let buffer): body = Array(buffer.readableBytesView)
        case .text(let text): body = Array(text.utf8)
        default: break
        }
        var delivery = InboxDelivery(
            source: source, id: id, type: type, receivedAt: date(received), headers: headers, body: body, handlers: [],
            orderingKeys: InboxDelivery.orderingKeys(stored: row.column("ordering_key")?.string))
        delivery.seq = Int64(seq)
        return delivery
    }

    /// One `finish` waiting for its transaction.
    struct FinishItem: Sendable {
        var pair: ClaimedPair
        var status: String
        var due: Int
        var error: String?
        var failures: Int
        var startedAt: Int
        var finishedAt: Int
        var logs: String
        /// The dead-letter alert to append once the outcome is recorded.
        var alert: AppendItem? = nil
    }

    public func finish(_ pair: ClaimedPair, outcome: PairOutcome, record: AttemptRecord) async throws -> Bool {
        let now = now()
        let (due, failures) = outcome.recorded(for: pair, now: now)
        let alert = outcome.alert.map {
            AppendItem(now: Int(now), delivery: $0, headers: StoredJSON.object($0.headers), handlers: StoredJSON.array($0.handlers),
                retention: Int(now), claimed: false, lease: 0)  // an alert of this death stored at any time before is this one
        }
        let item = FinishItem(
            pair: pair, status: outcome.status.rawValue, due: Int(due), error: outcome.error, failures: failures, startedAt: Self.milliseconds(record.startedAt),
            finishedAt: Self.milliseconds(record.finishedAt), logs: AttemptLogLine.encode(record.logs), alert: alert)
        return try await writer.perform(kind: "finish", item: item) { writer, items in
            try await Self.finish(items, on: writer)
        }
    }

    /// Records a batch of outcomes with one multi-row update of the pairs (a trigger writes the
    /// attempts). An outcome whose pair is no longer running as that attempt is refused (false).
    static func finish(_ items: [FinishItem], on writer: isolated WriterThread) async throws -> [Bool] {
        let connection = writer.connection
        var mine: Set<String> = []
        for chunk in stride(from: 0, to: items.count, by: 300).map({ $0..<min($0 + 300, items.count) }) {
            var binds: [SQLiteData] = []
            for item in items[chunk] {
                binds += [
                    .integer(Int(item.pair.delivery.seq)), .text(item.pair.handler), .text(item.status), .integer(item.due),
                    item.error.map { .text($0) } ?? .null, .integer(item.failures), .integer(item.pair.attempt),
                    .integer(item.startedAt), .integer(item.finishedAt), .text(item.logs),
                ]
            }
            let rows = try await connection.query(
                """
                UPDATE pairs SET status = v.column3, due_at = v.column4, last_error = v.column5, failures = v.column6,
                    lease_until = NULL, started_at = v.column8, updated_at = v.column9, logs = v.column10
                FROM (VALUES \(Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: chunk.count).joined(separator: ", "))) AS v
                WHERE pairs.delivery = v.column1 AND pairs.handler = v.column2 AND pairs.status = 'running' AND pairs.attempts = v.column7
                RETURNING pairs.delivery AS delivery, pairs.handler AS handler
                """,
                binds)
            for row in rows {
                if let delivery = row.column("delivery")?.integer, let handler = row.column("handler")?.string { mine.insert("\(delivery)\u{0}\(handler)") }
            }
        }
        let recorded = items.map { mine.contains("\($0.pair.delivery.seq)\u{0}\($0.pair.handler)") }
        // In the same transaction as the dead outcomes: a crash keeps both or neither.
        let alerts = zip(items, recorded).compactMap { item, recorded in recorded ? item.alert : nil }
        if !alerts.isEmpty { _ = try await append(alerts, on: writer) }
        return recorded
    }

    public func resolved(_ pair: ClaimedPair, handlers: [String]) async throws {
        let now = Int(now())
        try await writer.perform { connection in
            for handler in handlers {
                _ = try await connection.query(
                    """
                    INSERT INTO pairs (delivery, handler, source, status, due_at, updated_at, ordering_key, ordered_at)
                    VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?5, (SELECT ordered_at FROM pairs WHERE delivery = ?1 AND handler = ''))
                    ON CONFLICT (delivery, handler) DO UPDATE SET status = 'pending', due_at = ?4, failures = 0, lease_until = NULL, updated_at = ?4,
                        ordered_at = excluded.ordered_at
                    WHERE pairs.status != 'running'
                    """,
                    [.integer(Int(pair.delivery.seq)), .text(handler), .text(pair.delivery.source), .integer(now),
                     pair.delivery.orderingKeys[handler].map { .text($0) } ?? .null])
            }
            _ = try await connection.query(
                "DELETE FROM pairs WHERE delivery = ?1 AND kind = 'replay' AND status = 'running' AND attempts = ?2",
                [.integer(Int(pair.delivery.seq)), .integer(pair.attempt)])
        }
    }
}
