import Foundation
import SQLiteNIO

extension SQLiteStore: DeliveryInbox {
    static func milliseconds(_ date: Date) -> Int { Int((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ milliseconds: Int) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// One `append` waiting for its transaction.
    struct AppendItem: Sendable {
        var delivery: InboxDelivery
        var headers: String
        var handlers: String
        var retention: Int
        var claimed: Bool
        var lease: Int
    }

    public func append(_ delivery: InboxDelivery, retention: Duration, claimed: Bool, lease: Duration) async throws -> AppendResult {
        let item = AppendItem(
            delivery: delivery, headers: StoredJSON.object(delivery.headers), handlers: StoredJSON.array(delivery.handlers), retention: Int(retention.totalMilliseconds), claimed: claimed, lease: Int(lease.totalMilliseconds))
        return try await writer.perform(kind: "append", item: item) { writer, items in
            try await Self.append(items, on: writer)
        }
    }

    /// Stores a batch of deliveries with one multi-row statement (a trigger adds their pairs); only
    /// ids that collide are looked at one by one.
    static func append(_ items: [AppendItem], on writer: isolated WriterThread) async throws -> [AppendResult] {
        let connection = writer.connection
        let now = Int(Self.now())
        var results = [AppendResult?](repeating: nil, count: items.count)
        for chunk in stride(from: 0, to: items.count, by: 500).map({ $0..<min($0 + 500, items.count) }) {
            var binds: [SQLiteData] = []
            for item in items[chunk] { binds += deliveryBinds(item) }
            let rows = try await connection.query(
                "INSERT INTO deliveries (source, id, type, received_at, headers, body, handlers, claimed_until) VALUES "
                    + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?)", count: chunk.count).joined(separator: ", ")
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
            if received >= now - item.retention {
                results[index] = .duplicate(seq: Int64(seq), receivedAt: Self.date(received))
                continue
            }
            // Accepted longer ago than the retention window: this one counts as new. Should the
            // insert fail after the old row gave its id back, the sender is answered 503 and its
            // resend is stored then: the old row was past deduplicating anyway.
            _ = try await connection.query("UPDATE deliveries SET dedup = 0 WHERE seq = ?1", [.integer(seq)])
            let rows = try await connection.query(
                "INSERT INTO deliveries (source, id, type, received_at, headers, body, handlers, claimed_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
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
            item.claimed ? .integer(milliseconds(item.delivery.receivedAt) + item.lease) : .null,
        ]
    }

    public func renew(_ pairs: [(delivery: Int64, handler: String, attempt: Int)], lease: Duration) async throws {
        for chunk in stride(from: 0, to: pairs.count, by: 300).map({ pairs[$0..<min($0 + 300, pairs.count)] }) {
            try await writer.perform { connection in
                var binds: [SQLiteData] = [.integer(Int(Self.now() + lease.totalMilliseconds))]
                var values: [String] = []
                for pair in chunk {
                    values.append("(?\(binds.count + 1), ?\(binds.count + 2), ?\(binds.count + 3))")
                    binds += [.integer(Int(pair.delivery)), .text(pair.handler), .integer(pair.attempt)]
                }
                _ = try await connection.query(
                    """
                    UPDATE tasks SET lease_until = ?1 FROM (VALUES \(values.joined(separator: ", "))) AS held
                    WHERE tasks.delivery = held.column1 AND tasks.handler = held.column2 AND tasks.attempts = held.column3
                      AND tasks.status = 'running'
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

    public func claim(candidates: Int, lease: Duration, choose: @escaping @Sendable ([TaskCandidate]) -> [TaskCandidate]) async throws -> [InboxTask] {
        try await writer.perform { connection in
            let now = Int(Self.now())
            // Oldest first, at most `candidates` per handler, so that one handler's backlog cannot
            // crowd the others out of the candidates.
            let rows = try await connection.query(
                """
                SELECT delivery, source, handler, abandoned FROM (
                    SELECT delivery, source, handler, due, abandoned,
                           ROW_NUMBER() OVER (PARTITION BY handler ORDER BY due, delivery) AS position
                    FROM (
                        SELECT delivery, source, handler, due_at AS due, 0 AS abandoned FROM tasks
                        WHERE status IN ('pending', 'retry') AND due_at <= ?1
                        UNION ALL
                        SELECT delivery, source, handler, lease_until AS due, 1 AS abandoned FROM tasks
                        WHERE status = 'running' AND lease_until <= ?1
                    )
                )
                WHERE position <= ?2 ORDER BY due, delivery LIMIT ?3
                """,
                [.integer(now), .integer(candidates), .integer(candidates * 4)])
            let offered = rows.compactMap { row -> TaskCandidate? in
                guard let delivery = row.column("delivery")?.integer, let source = row.column("source")?.string,
                    let handler = row.column("handler")?.string
                else { return nil }
                return TaskCandidate(delivery: Int64(delivery), source: source, handler: handler, abandoned: row.column("abandoned")?.integer == 1)
            }
            let chosen = offered.isEmpty ? [] : choose(offered)
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
                UPDATE tasks SET status = 'running', attempts = attempts + 1, lease_until = ?1, updated_at = ?2,
                    -- An attempt its process never finished counts as failed (the right side reads the old row).
                    failures = failures + (CASE WHEN tasks.status = 'running' THEN 1 ELSE 0 END),
                    last_error = CASE WHEN tasks.status = 'running'
                        THEN 'attempt ' || tasks.attempts || ' did not finish: the process running it ended' ELSE tasks.last_error END
                FROM (VALUES \(values.joined(separator: ", "))) AS chosen
                WHERE tasks.delivery = chosen.column1 AND tasks.handler = chosen.column2
                RETURNING tasks.delivery AS delivery, tasks.handler AS handler, tasks.attempts AS attempts, tasks.failures AS failures
                """,
                binds)
            let deliveries = try await Self.deliveries(Set(leased.compactMap { $0.column("delivery")?.integer }), on: connection)
            return leased.compactMap { row -> InboxTask? in
                guard let seq = row.column("delivery")?.integer, let delivery = deliveries[seq], let handler = row.column("handler")?.string,
                    let attempts = row.column("attempts")?.integer, let failures = row.column("failures")?.integer
                else { return nil }
                let abandoned = chosen.contains { $0.delivery == seq && $0.handler == handler && $0.abandoned }
                return InboxTask(delivery: delivery, handler: handler, attempt: attempts, failures: failures, abandoned: abandoned)
            }
        }
    }

    /// The deliveries numbered `seqs`, by number.
    static func deliveries(_ seqs: Set<Int>, on connection: SQLiteConnection) async throws -> [Int: InboxDelivery] {
        if seqs.isEmpty { return [:] }
        let list = seqs.sorted()
        let rows = try await connection.query(
            "SELECT seq, source, id, type, received_at, headers, body FROM deliveries WHERE seq IN (\(list.indices.map { "?\($0 + 1)" }.joined(separator: ", ")))",
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
        var delivery = InboxDelivery(source: source, id: id, type: type, receivedAt: date(received), headers: headers, body: body, handlers: [])
        delivery.seq = Int64(seq)
        return delivery
    }

    /// One `finish` waiting for its transaction.
    struct FinishItem: Sendable {
        var task: InboxTask
        var status: String
        var due: Int
        var error: String?
        var failures: Int
        var startedAt: Int
        var finishedAt: Int
        var logs: String
    }

    public func finish(_ task: InboxTask, outcome: InboxOutcome, record: AttemptRecord) async throws -> Bool {
        let now = Int(Self.now())
        let (status, due, error, failures): (String, Int, String?, Int) =
            switch outcome {
            case .done: ("done", now, nil, task.failures)
            case .retry(let at, let error): ("retry", Self.milliseconds(at), error, task.failures + 1)
            case .dead(let error): ("dead", now, error, task.failures + 1)
            }
        let item = FinishItem(
            task: task, status: status, due: due, error: error, failures: failures, startedAt: Self.milliseconds(record.startedAt),
            finishedAt: Self.milliseconds(record.finishedAt), logs: "[" + record.logs.joined(separator: ",") + "]")
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
                    .integer(Int(item.task.delivery.seq)), .text(item.task.handler), .text(item.status), .integer(item.due),
                    item.error.map { .text($0) } ?? .null, .integer(item.failures), .integer(item.task.attempt),
                    .integer(item.startedAt), .integer(item.finishedAt), .text(item.logs),
                ]
            }
            let rows = try await connection.query(
                """
                UPDATE tasks SET status = v.column3, due_at = v.column4, last_error = v.column5, failures = v.column6,
                    lease_until = NULL, started_at = v.column8, updated_at = v.column9, logs = v.column10
                FROM (VALUES \(Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: chunk.count).joined(separator: ", "))) AS v
                WHERE tasks.delivery = v.column1 AND tasks.handler = v.column2 AND tasks.status = 'running' AND tasks.attempts = v.column7
                RETURNING tasks.delivery AS delivery, tasks.handler AS handler
                """,
                binds)
            for row in rows {
                if let delivery = row.column("delivery")?.integer, let handler = row.column("handler")?.string { mine.insert("\(delivery)\u{0}\(handler)") }
            }
        }
        return items.map { mine.contains("\($0.task.delivery.seq)\u{0}\($0.task.handler)") }
    }

    public func resolved(_ task: InboxTask, handlers: [String]) async throws {
        try await writer.perform { connection in
            let now = Int(Self.now())
            for handler in handlers {
                _ = try await connection.query(
                    """
                    INSERT INTO tasks (delivery, handler, source, status, due_at, updated_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?4)
                    ON CONFLICT (delivery, handler) DO UPDATE SET status = 'pending', due_at = ?4, failures = 0, lease_until = NULL, updated_at = ?4
                    WHERE tasks.status != 'running'
                    """,
                    [.integer(Int(task.delivery.seq)), .text(handler), .text(task.delivery.source), .integer(now)])
            }
            _ = try await connection.query(
                "DELETE FROM tasks WHERE delivery = ?1 AND handler = '' AND status = 'running' AND attempts = ?2",
                [.integer(Int(task.delivery.seq)), .integer(task.attempt)])
        }
    }

    public func list(_ filter: DeliveryFilter) async throws -> [DeliverySummary] {
        let rows = try await query(
            """
            SELECT d.seq, d.source, d.id, d.type, d.received_at,
                   (SELECT group_concat(status) FROM tasks WHERE delivery = d.seq AND handler != '') AS statuses
            FROM deliveries d
            WHERE (?1 IS NULL OR d.source = ?1) AND (?2 IS NULL OR d.received_at >= ?2)
              AND (?3 IS NULL OR EXISTS (SELECT 1 FROM tasks WHERE delivery = d.seq AND status = ?3 AND handler != ''))
            ORDER BY d.seq DESC LIMIT ?4
            """,
            [filter.source.map { .text($0) } ?? .null, filter.since.map { .integer(Self.milliseconds($0)) } ?? .null,
             filter.status.map { .text($0.rawValue) } ?? .null, .integer(max(1, filter.limit))])
        return rows.compactMap { row in
            guard let seq = row.column("seq")?.integer, let source = row.column("source")?.string, let id = row.column("id")?.string,
                let type = row.column("type")?.string, let received = row.column("received_at")?.integer
            else { return nil }
            var statuses: [TaskStatus: Int] = [:]
            for name in (row.column("statuses")?.string ?? "").split(separator: ",") {
                if let status = TaskStatus(rawValue: String(name)) { statuses[status, default: 0] += 1 }
            }
            return DeliverySummary(seq: Int64(seq), source: source, id: id, type: type, receivedAt: Self.date(received), statuses: statuses)
        }
    }

    public func show(_ seq: Int64) async throws -> DeliveryDetail? {
        let rows = try await query("SELECT seq, source, id, type, received_at, headers, body FROM deliveries WHERE seq = ?1", [.integer(Int(seq))])
        guard let row = rows.first, var delivery = Self.delivery(from: row) else { return nil }
        let taskRows = try await query(
            "SELECT handler, status, attempts, due_at, last_error FROM tasks WHERE delivery = ?1 AND handler != '' ORDER BY handler",
            [.integer(Int(seq))])
        let tasks = taskRows.compactMap { row -> DeliveryDetail.TaskDetail? in
            guard let handler = row.column("handler")?.string, let status = row.column("status")?.string.flatMap(TaskStatus.init(rawValue:)),
                let attempts = row.column("attempts")?.integer
            else { return nil }
            let due = (status == .pending || status == .retry) ? row.column("due_at")?.integer.map(Self.date) : nil
            return DeliveryDetail.TaskDetail(handler: handler, status: status, attempts: attempts, dueAt: due, lastError: row.column("last_error")?.string)
        }
        delivery.handlers = tasks.map(\.handler)
        let attemptRows = try await query(
            "SELECT handler, attempt, started_at, finished_at, outcome, error, logs FROM attempts WHERE delivery = ?1 ORDER BY started_at, handler",
            [.integer(Int(seq))])
        let attempts = attemptRows.compactMap { row -> DeliveryDetail.AttemptDetail? in
            guard let handler = row.column("handler")?.string, let attempt = row.column("attempt")?.integer,
                let started = row.column("started_at")?.integer, let finished = row.column("finished_at")?.integer,
                let outcome = row.column("outcome")?.string
            else { return nil }
            let logs = (row.column("logs")?.string).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [Any] } ?? []
            let lines = logs.compactMap { line -> String? in
                guard let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
                return String(decoding: data, as: UTF8.self)
            }
            return DeliveryDetail.AttemptDetail(
                handler: handler, attempt: attempt, startedAt: Self.date(started), finishedAt: Self.date(finished), outcome: outcome,
                error: row.column("error")?.string, logs: lines)
        }
        return DeliveryDetail(delivery: delivery, tasks: tasks, attempts: attempts)
    }

    public func find(id: String) async throws -> [Int64] {
        let rows = try await query("SELECT seq FROM deliveries WHERE id = ?1 ORDER BY seq DESC", [.text(id)])
        return rows.compactMap { $0.column("seq")?.integer.map(Int64.init) }
    }

    public func replay(_ selection: ReplaySelection) async throws -> Int {
        try await writer.perform { connection in
            let now = Int(Self.now())
            switch selection {
            case .delivery(let seq):
                let rows = try await connection.query(
                    """
                    INSERT INTO tasks (delivery, handler, source, status, due_at, updated_at)
                    SELECT seq, '', source, 'pending', ?2, ?2 FROM deliveries WHERE seq = ?1
                    ON CONFLICT (delivery, handler) DO UPDATE SET status = 'pending', due_at = ?2, updated_at = ?2
                    RETURNING delivery
                    """,
                    [.integer(Int(seq)), .integer(now)])
                return rows.count
            case .dead(let filter):
                let rows = try await connection.query(
                    """
                    UPDATE tasks SET status = 'pending', due_at = ?3, failures = 0, updated_at = ?3
                    WHERE status = 'dead' AND delivery IN (
                        SELECT seq FROM deliveries WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR received_at >= ?2))
                    RETURNING delivery
                    """,
                    [filter.source.map { .text($0) } ?? .null, filter.since.map { .integer(Self.milliseconds($0)) } ?? .null, .integer(now)])
                return Set(rows.compactMap { $0.column("delivery")?.integer }).count
            }
        }
    }

    public func purge(before: Date, onlyFinished: Bool) async throws -> Int {
        var total = 0
        while true {
            let count = try await writer.perform { connection in
                let selection = """
                    SELECT seq FROM deliveries WHERE received_at < ?1
                    \(onlyFinished ? "AND NOT EXISTS (SELECT 1 FROM tasks WHERE delivery = deliveries.seq AND status != 'done')" : "")
                    LIMIT 5000
                    """
                let seqs = try await connection.query(selection, [.integer(Self.milliseconds(before))]).compactMap { $0.column("seq")?.integer }
                if seqs.isEmpty { return 0 }
                let list = seqs.map(String.init).joined(separator: ",")
                _ = try await connection.query("DELETE FROM attempts WHERE delivery IN (\(list))")
                _ = try await connection.query("DELETE FROM tasks WHERE delivery IN (\(list))")
                _ = try await connection.query("DELETE FROM deliveries WHERE seq IN (\(list))")
                return seqs.count
            }
            total += count
            if count < 5000 { return total }
        }
    }
}
