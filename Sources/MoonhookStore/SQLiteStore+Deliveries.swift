import Foundation
import SQLiteNIO

/// What operators see and do: queries, replays, purges and counts over the inbox.
extension SQLiteStore {
    /// The conditions of `filter` on `deliveries d`, with their binds in order. `paging` adds the
    /// cursor; the state condition looks at the pairs that run handlers (not replays).
    static func conditions(_ filter: DeliveryFilter, status: Bool = true, paging: Bool = false) -> (sql: String, binds: [SQLiteData]) {
        var parts: [String] = []
        var binds: [SQLiteData] = []
        func add(_ sql: String, _ value: SQLiteData) {
            parts.append(sql)
            binds.append(value)
        }
        if let source = filter.source { add("d.source = ?", .text(source)) }
        if let type = filter.type { add("d.type = ?", .text(type)) }
        if let id = filter.id { add("d.id = ?", .text(id)) }
        if let since = filter.since { add("d.received_at >= ?", .integer(milliseconds(since))) }
        if let until = filter.until { add("d.received_at < ?", .integer(milliseconds(until))) }
        if status, let state = filter.status {
            add("EXISTS (SELECT 1 FROM pairs WHERE delivery = d.seq AND status = ? AND kind = 'handler')", .text(state.rawValue))
        }
        if paging, let cursor = filter.cursor { add("d.seq < ?", .integer(Int(cursor))) }
        return (parts.isEmpty ? "1" : parts.joined(separator: " AND "), binds)
    }

    public func deliveries(_ filter: DeliveryFilter) async throws -> DeliveryPage {
        let limit = max(1, filter.limit)
        let (conditions, binds) = Self.conditions(filter, paging: true)
        let rows = try await query(
            """
            SELECT d.seq, d.source, d.id, d.type, d.received_at,
                   (SELECT group_concat(status) FROM pairs WHERE delivery = d.seq AND kind = 'handler') AS statuses
            FROM deliveries d WHERE \(conditions) ORDER BY d.seq DESC LIMIT ?
            """,
            binds + [.integer(limit + 1)])
        var summaries = rows.compactMap { row -> DeliverySummary? in
            guard let seq = row.column("seq")?.integer, let source = row.column("source")?.string, let id = row.column("id")?.string,
                let type = row.column("type")?.string, let received = row.column("received_at")?.integer
            else { return nil }
            var statuses: [PairStatus: Int] = [:]
            for name in (row.column("statuses")?.string ?? "").split(separator: ",") {
                if let status = PairStatus(rawValue: String(name)) { statuses[status, default: 0] += 1 }
            }
            return DeliverySummary(seq: Int64(seq), source: source, id: id, type: type, receivedAt: Self.date(received), statuses: statuses)
        }
        let more = summaries.count > limit
        if more { summaries.removeLast(summaries.count - limit) }
        return DeliveryPage(deliveries: summaries, next: more ? summaries.last?.seq : nil)
    }

    public func show(_ seq: Int64) async throws -> DeliveryDetail? {
        let rows = try await query(
            "SELECT seq, source, id, type, received_at, headers, body, ordering_key FROM deliveries WHERE seq = ?1", [.integer(Int(seq))])
        guard let row = rows.first, var delivery = Self.delivery(from: row) else { return nil }
        let pairRows = try await query(
            "SELECT handler, status, attempts, due_at, last_error, ordering_key, \(SerialOrder.waitingOn("pairs")) AS waiting_on FROM pairs WHERE delivery = ?1 AND kind = 'handler' ORDER BY handler",
            [.integer(Int(seq))])
        let pairs = pairRows.compactMap { row -> DeliveryDetail.PairDetail? in
            guard let handler = row.column("handler")?.string, let status = row.column("status")?.string.flatMap(PairStatus.init(rawValue:)),
                let attempts = row.column("attempts")?.integer
            else { return nil }
            let due = (status == .pending || status == .retry) ? row.column("due_at")?.integer.map(Self.date) : nil
            return DeliveryDetail.PairDetail(
                handler: handler, status: status, attempts: attempts, dueAt: due, lastError: row.column("last_error")?.string,
                orderingKey: row.column("ordering_key")?.string, waitingOn: row.column("waiting_on")?.integer.map(Int64.init))
        }
        delivery.handlers = pairs.map(\.handler)
        let attemptRows = try await query(
            "SELECT handler, attempt, started_at, finished_at, outcome, error, logs FROM attempts WHERE delivery = ?1 ORDER BY started_at, handler",
            [.integer(Int(seq))])
        let attempts = attemptRows.compactMap { row -> DeliveryDetail.AttemptDetail? in
            guard let handler = row.column("handler")?.string, let attempt = row.column("attempt")?.integer,
                let started = row.column("started_at")?.integer, let finished = row.column("finished_at")?.integer,
                let outcome = row.column("outcome")?.string.flatMap(PairStatus.init(rawValue:))
            else { return nil }
            return DeliveryDetail.AttemptDetail(
                handler: handler, attempt: attempt, startedAt: Self.date(started), finishedAt: Self.date(finished), outcome: outcome,
                error: row.column("error")?.string, logs: AttemptLogLine.decode(row.column("logs")?.string))
        }
        return DeliveryDetail(delivery: delivery, pairs: pairs, attempts: attempts)
    }

    public func replay(_ selection: ReplaySelection, order: ReplayOrder) async throws -> Int {
        let now = Int(now())
        let place = order == .keep ? SerialOrder.replayPlace : "NULL"
        return try await writer.perform { connection in
            switch selection {
            case .delivery(let seq):
                let rows = try await connection.query(
                    """
                    INSERT INTO pairs (delivery, handler, kind, source, status, due_at, updated_at, ordered_at)
                    SELECT seq, '', 'replay', source, 'pending', ?2, ?2, \(place) FROM deliveries WHERE seq = ?1
                    ON CONFLICT (delivery, handler) DO UPDATE SET status = 'pending', due_at = ?2, updated_at = ?2, ordered_at = excluded.ordered_at
                    RETURNING delivery
                    """,
                    [.integer(Int(seq)), .integer(now)])
                return rows.count
            case .dead(let filter):
                let (conditions, binds) = Self.conditions(filter, status: false)
                let rows = try await connection.query(
                    """
                    UPDATE pairs SET status = 'pending', due_at = ?, failures = 0, updated_at = ?, ordered_at = \(place)
                    WHERE status = 'dead' AND kind = 'handler' AND delivery IN (SELECT d.seq FROM deliveries d WHERE \(conditions))
                    RETURNING delivery
                    """,
                    [.integer(now), .integer(now)] + binds)
                return Set(rows.compactMap { $0.column("delivery")?.integer }).count
            }
        }
    }

    public func purge(_ filter: DeliveryFilter, onlyFinished: Bool) async throws -> Int {
        var total = 0
        let (conditions, binds) = Self.conditions(filter)
        while true {
            let count = try await writer.perform { connection in
                let selection = """
                    SELECT d.seq FROM deliveries d WHERE \(conditions)
                    \(onlyFinished ? "AND NOT EXISTS (SELECT 1 FROM pairs WHERE delivery = d.seq AND status != 'done')" : "")
                    LIMIT 5000
                    """
                let seqs = try await connection.query(selection, binds).compactMap { $0.column("seq")?.integer }
                if seqs.isEmpty { return 0 }
                let list = seqs.map(String.init).joined(separator: ",")
                _ = try await connection.query("DELETE FROM attempts WHERE delivery IN (\(list))")
                _ = try await connection.query("DELETE FROM pairs WHERE delivery IN (\(list))")
                _ = try await connection.query("DELETE FROM deliveries WHERE seq IN (\(list))")
                return seqs.count
            }
            total += count
            if count < 5000 { return total }
        }
    }

    public func pairCounts() async throws -> PairCounts {
        let states = try await query("SELECT status, count(*) AS n FROM pairs WHERE kind = 'handler' GROUP BY status")
        var byStatus: [PairStatus: Int] = [:]
        for row in states {
            if let status = row.column("status")?.string.flatMap(PairStatus.init(rawValue:)), let count = row.column("n")?.integer { byStatus[status] = count }
        }
        let waiting = try await query(
            """
            SELECT p.source, min(d.received_at) AS oldest FROM pairs p JOIN deliveries d ON d.seq = p.delivery
            WHERE p.status IN ('pending', 'retry') GROUP BY p.source
            """)
        var oldest: [String: Date] = [:]
        for row in waiting {
            if let source = row.column("source")?.string, let at = row.column("oldest")?.integer { oldest[source] = Self.date(at) }
        }
        return PairCounts(byStatus: byStatus, oldestWaiting: oldest)
    }

    public func openPairs(now: Date) async throws -> OpenPairs {
        let open = try await query(
            "SELECT source, status, count(*) AS n FROM pairs WHERE kind = 'handler' AND status IN ('pending', 'running', 'retry', 'dead') GROUP BY source, status")
        var bySource: [String: [PairStatus: Int]] = [:]
        for row in open {
            if let source = row.column("source")?.string, let status = row.column("status")?.string.flatMap(PairStatus.init(rawValue:)),
                let count = row.column("n")?.integer
            {
                bySource[source, default: [:]][status] = count
            }
        }
        let due = try await query(
            "SELECT source, min(due_at) AS due FROM pairs WHERE kind = 'handler' AND status IN ('pending', 'retry') AND due_at <= ?1 GROUP BY source",
            [.integer(Self.milliseconds(now))])
        var oldest: [String: Date] = [:]
        for row in due {
            if let source = row.column("source")?.string, let at = row.column("due")?.integer { oldest[source] = Self.date(at) }
        }
        return OpenPairs(bySource: bySource, oldestDue: oldest)
    }
}
