import Foundation
import PostgresNIO

/// What operators see and do: queries, replays, purges and counts over the inbox.
extension PostgresStore {
    /// SQL with numbered binds, for statements whose conditions depend on a filter.
    struct Statement {
        var binds = PostgresBindings()

        /// Adds `value` as the next bind; its placeholder.
        mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }

        /// The conditions of `filter` on `deliveries d`. `paging` adds the cursor; the state
        /// condition looks at the pairs that run handlers (not replays).
        mutating func conditions(_ filter: DeliveryFilter, status: Bool = true, paging: Bool = false) -> String {
            var parts: [String] = []
            if let source = filter.source { parts.append("d.source = \(bind(source))") }
            if let type = filter.type { parts.append("d.type = \(bind(type))") }
            if let id = filter.id { parts.append("d.id = \(bind(id))") }
            if let since = filter.since { parts.append("d.received_at >= \(bind(PostgresStore.milliseconds(since)))") }
            if let until = filter.until { parts.append("d.received_at < \(bind(PostgresStore.milliseconds(until)))") }
            if status, let state = filter.status {
                parts.append("EXISTS (SELECT 1 FROM pairs WHERE delivery = d.seq AND status = \(bind(state.rawValue)) AND kind = 'handler')")
            }
            if paging, let cursor = filter.cursor { parts.append("d.seq < \(bind(cursor))") }
            return parts.isEmpty ? "true" : parts.joined(separator: " AND ")
        }

        func query(_ sql: String) -> PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
    }

    public func deliveries(_ filter: DeliveryFilter) async throws -> DeliveryPage {
        let limit = max(1, filter.limit)
        var statement = Statement()
        let conditions = statement.conditions(filter, paging: true)
        let limitBind = statement.bind(Int64(limit + 1))
        let rows = try await run(
            "listing deliveries",
            statement.query(
                """
                SELECT d.seq, d.source, d.id, d.type, d.received_at,
                       coalesce((SELECT string_agg(status, ',') FROM pairs WHERE delivery = d.seq AND kind = 'handler'), '')
                FROM deliveries d WHERE \(conditions) ORDER BY d.seq DESC LIMIT \(limitBind)
                """))
        var summaries: [DeliverySummary] = []
        for row in rows {
            let (seq, source, id, type, received, states) = try row.decode((Int64, String, String, String, Int64, String).self)
            var statuses: [PairStatus: Int] = [:]
            for name in states.split(separator: ",") {
                if let status = PairStatus(rawValue: String(name)) { statuses[status, default: 0] += 1 }
            }
            summaries.append(DeliverySummary(seq: seq, source: source, id: id, type: type, receivedAt: Self.date(received), statuses: statuses))
        }
        let more = summaries.count > limit
        if more { summaries.removeLast(summaries.count - limit) }
        return DeliveryPage(deliveries: summaries, next: more ? summaries.last?.seq : nil)
    }

    public func show(_ seq: Int64) async throws -> DeliveryDetail? {
        let rows = try await run("reading a delivery", "SELECT \(unescaped: Self.deliveryColumns) FROM deliveries WHERE seq = \(seq)")
        guard let row = rows.first else { return nil }
        var delivery = try Self.delivery(from: row)
        let pairRows = try await run(
            "reading a delivery's pairs",
            """
            SELECT handler, status, attempts::int8, due_at, last_error, ordering_key, \(unescaped: SerialOrder.waitingOn("pairs")) AS waiting_on
            FROM pairs WHERE delivery = \(seq) AND kind = 'handler' ORDER BY handler
            """)
        var pairs: [DeliveryDetail.PairDetail] = []
        for row in pairRows {
            let (handler, statusName, attempts, due, lastError, orderingKey, waitingOn) = try row.decode((String, String, Int64, Int64, String?, String?, Int64?).self)
            guard let status = PairStatus(rawValue: statusName) else { continue }
            let dueAt = (status == .pending || status == .retry) ? Self.date(due) : nil
            pairs.append(
                DeliveryDetail.PairDetail(
                    handler: handler, status: status, attempts: Int(attempts), dueAt: dueAt, lastError: lastError, orderingKey: orderingKey, waitingOn: waitingOn))
        }
        delivery.handlers = pairs.map(\.handler)
        let attemptRows = try await run(
            "reading a delivery's attempts",
            """
            SELECT handler, attempt::int8, started_at, finished_at, outcome, error, logs FROM attempts
            WHERE delivery = \(seq) ORDER BY started_at, handler
            """)
        var attempts: [DeliveryDetail.AttemptDetail] = []
        for row in attemptRows {
            let (handler, attempt, started, finished, outcomeName, error, logs) = try row.decode((String, Int64, Int64, Int64, String, String?, String).self)
            guard let outcome = PairStatus(rawValue: outcomeName) else { continue }
            attempts.append(
                DeliveryDetail.AttemptDetail(
                    handler: handler, attempt: Int(attempt), startedAt: Self.date(started), finishedAt: Self.date(finished), outcome: outcome,
                    error: error, logs: AttemptLogLine.decode(logs)))
        }
        return DeliveryDetail(delivery: delivery, pairs: pairs, attempts: attempts)
    }

    public func replay(_ selection: ReplaySelection, order: ReplayOrder) async throws -> Int {
        let replayed = try await replayPairs(selection, place: order == .keep ? SerialOrder.replayPlace : "NULL")
        if replayed > 0 { notifyDue() }
        return replayed
    }

    private func replayPairs(_ selection: ReplaySelection, place: String) async throws -> Int {
        let now = now()
        switch selection {
        case .delivery(let seq):
            let rows = try await run(
                "replaying a delivery",
                """
                INSERT INTO pairs (delivery, handler, kind, source, status, due_at, updated_at, ordered_at)
                SELECT seq, '', 'replay', source, 'pending', \(now), \(now), \(unescaped: place) FROM deliveries WHERE seq = \(seq)
                ON CONFLICT (delivery, handler) DO UPDATE SET status = 'pending', due_at = \(now), updated_at = \(now), ordered_at = excluded.ordered_at
                RETURNING delivery
                """)
            return rows.count
        case .dead(let filter):
            var statement = Statement()
            let nowBind = statement.bind(now)
            let conditions = statement.conditions(filter, status: false)
            let rows = try await run(
                "replaying dead pairs",
                statement.query(
                    """
                    WITH replayed AS (
                        UPDATE pairs SET status = 'pending', due_at = \(nowBind), failures = 0, updated_at = \(nowBind), ordered_at = \(place)
                        WHERE status = 'dead' AND kind = 'handler' AND delivery IN (SELECT d.seq FROM deliveries d WHERE \(conditions))
                        RETURNING delivery
                    )
                    SELECT count(DISTINCT delivery)::int8 FROM replayed
                    """))
            return Int(try rows.first?.decode(Int64.self) ?? 0)
        }
    }

    /// Deletes in batches of 5,000 (pairs and attempts go with their delivery). The retention
    /// sweep (`onlyFinished`) runs on one instance at a time: a batch that cannot take the sweep's
    /// advisory lock leaves the work to the instance holding it.
    public func purge(_ filter: DeliveryFilter, onlyFinished: Bool) async throws -> Int {
        var total = 0
        while true {
            var statement = Statement()
            let conditions = statement.conditions(filter)
            let finished = onlyFinished ? "AND NOT EXISTS (SELECT 1 FROM pairs WHERE delivery = d.seq AND status <> 'done')" : ""
            let query = statement.query(
                """
                WITH doomed AS (SELECT d.seq FROM deliveries d WHERE \(conditions) \(finished) LIMIT 5000),
                gone AS (DELETE FROM deliveries WHERE seq IN (SELECT seq FROM doomed) RETURNING 1)
                SELECT count(*)::int8 FROM gone
                """)
            let count = try await transaction("purging deliveries") { connection -> Int in
                if onlyFinished {
                    let locked = try await connection.query("SELECT pg_try_advisory_xact_lock(\(PostgresMigrations.lockKey + 1))", logger: self.logger).collect()
                    if try locked.first?.decode(Bool.self) != true { return 0 }
                }
                let rows = try await connection.query(query, logger: self.logger).collect()
                return Int(try rows.first?.decode(Int64.self) ?? 0)
            }
            total += count
            if count < 5000 { return total }
        }
    }

    public func pairCounts() async throws -> PairCounts {
        let states = try await run("counting pairs", "SELECT status, count(*)::int8 FROM pairs WHERE kind = 'handler' GROUP BY status")
        var byStatus: [PairStatus: Int] = [:]
        for row in states {
            let (name, count) = try row.decode((String, Int64).self)
            if let status = PairStatus(rawValue: name) { byStatus[status] = Int(count) }
        }
        let waiting = try await run(
            "finding the oldest waiting deliveries",
            """
            SELECT p.source, min(d.received_at) FROM pairs p JOIN deliveries d ON d.seq = p.delivery
            WHERE p.status IN ('pending', 'retry') GROUP BY p.source
            """)
        var oldest: [String: Date] = [:]
        for row in waiting {
            let (source, at) = try row.decode((String, Int64).self)
            oldest[source] = Self.date(at)
        }
        return PairCounts(byStatus: byStatus, oldestWaiting: oldest)
    }

    public func openPairs(now: Date) async throws -> OpenPairs {
        let open = try await run(
            "counting open pairs",
            "SELECT source, status, count(*)::int8 FROM pairs WHERE kind = 'handler' AND status IN ('pending', 'running', 'retry', 'dead') GROUP BY source, status")
        var bySource: [String: [PairStatus: Int]] = [:]
        for row in open {
            let (source, name, count) = try row.decode((String, String, Int64).self)
            if let status = PairStatus(rawValue: name) { bySource[source, default: [:]][status] = Int(count) }
        }
        let due = try await run(
            "finding the oldest due pairs",
            "SELECT source, min(due_at) FROM pairs WHERE kind = 'handler' AND status IN ('pending', 'retry') AND due_at <= \(Self.milliseconds(now)) GROUP BY source")
        var oldest: [String: Date] = [:]
        for row in due {
            let (source, at) = try row.decode((String, Int64).self)
            oldest[source] = Self.date(at)
        }
        return OpenPairs(bySource: bySource, oldestDue: oldest)
    }
}
