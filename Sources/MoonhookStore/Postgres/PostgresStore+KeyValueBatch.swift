import PostgresNIO

/// Handlers' key-value writes on PostgreSQL, gathered from concurrent callers into one statement
/// and one commit per batch: `moonhook_kv_write` (migration 2) runs each operation in a block of
/// its own, a savepoint, so an operation that fails (an increment of a non-integer) fails only its
/// own caller. Operations run in (namespace, key) order, so two instances' batches take their row
/// locks in the same order and never deadlock; operations on one key keep their callers' order.
extension PostgresStore {
    /// What one operation returned, or its own error.
    typealias KeyValueWriteResult = Result<KeyValueWrite.Outcome, StoreError>

    /// Batched rather than one statement and one commit per call: on one core shared with
    /// PostgreSQL, 1,927 against 770 handled deliveries per second (docs/benchmarks.md).
    func write(_ write: KeyValueWrite) async throws -> KeyValueWrite.Outcome {
        try await keyValueWrites.submit(write).get()
    }

    /// The function's arguments for one write: operation, value, expected value, expiry (0: none).
    private static func arguments(_ write: KeyValueWrite, now: Int64) -> (String, String, String, Int64) {
        func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
        func expiry(_ ttl: Duration?) -> Int64 { ttl.map { now + $0.totalMilliseconds } ?? 0 }
        switch write.operation {
        case .set(let value, let ttl): return ("set", text(value), "", expiry(ttl))
        case .delete: return ("delete", "", "", 0)
        case .increment(let by, let ttl): return ("incr", String(by), "", expiry(ttl))
        case .add(let value, let ttl): return ("add", text(value), "", expiry(ttl))
        case .compareAndSwap(let expected, let new, let ttl): return ("cas", text(new), text(expected), expiry(ttl))
        }
    }

    func keyValueBatch(_ items: [KeyValueWrite]) async throws -> [KeyValueWriteResult] {
        let order = items.indices.sorted { left, right in
            (items[left].namespace, items[left].key, left) < (items[right].namespace, items[right].key, right)
        }
        let now = now()
        let sorted = order.map { items[$0] }
        let arguments = sorted.map { Self.arguments($0, now: now) }
        let rows = try await run(
            "writing keys",
            """
            SELECT n, result, state, message FROM moonhook_kv_write(
                \(arguments.map(\.0))::text[], \(sorted.map(\.namespace))::text[], \(sorted.map(\.key))::text[],
                \(arguments.map(\.1))::text[], \(arguments.map(\.2))::text[], \(arguments.map(\.3))::int8[], \(now)::int8)
            """)
        var results = [KeyValueWriteResult?](repeating: nil, count: items.count)
        for row in rows {
            let (position, result, state, message) = try row.decode((Int32, String?, String?, String?).self)
            let index = Int(position) - 1
            guard order.indices.contains(index) else { continue }
            let write = sorted[index]
            if let state {
                results[order[index]] = .failure(Self.keyValueError(write, state: state, message: message ?? "error \(state)"))
                continue
            }
            switch write.operation {
            case .set: results[order[index]] = .success(.done)
            case .delete, .add, .compareAndSwap: results[order[index]] = .success(.flag(result == "true"))
            case .increment:
                guard let result, let number = Int64(result) else {
                    results[order[index]] = .failure(StoreError(.database, "increment returned no value"))
                    continue
                }
                results[order[index]] = .success(.number(number))
            }
        }
        return try results.map { result in
            guard let result else { throw StoreError(.database, "a key-value batch returned too few results") }
            return result
        }
    }

    /// An operation's own error, by its SQLSTATE.
    private static func keyValueError(_ write: KeyValueWrite, state: String, message: String) -> StoreError {
        switch state {
        case "23502": StoreError(.notAnInteger, "the value at '\(write.key)' is not an integer, or adding to it overflows 64 bits")
        case "22021": StoreError(.database, "database error: PostgreSQL cannot store a NUL character in text (\(oneLine(message)))")
        default: StoreError(.database, "database error: \(oneLine(message))")
        }
    }

    /// Migration 2's function. Each operation's `BEGIN ... EXCEPTION` block is a subtransaction:
    /// its error rolls back that operation only. `OTHERS` does not catch a cancelled statement
    /// (the statement timeout), which fails the whole batch as it should.
    static let keyValueFunction = """
        CREATE FUNCTION moonhook_kv_write(ops text[], namespaces text[], keys text[], vals text[], expected text[], expires int8[], at_ms int8)
        RETURNS TABLE (n integer, result text, state text, message text)
        LANGUAGE plpgsql AS $body$
        DECLARE
            i integer;
            expiry int8;
        BEGIN
            FOR i IN 1 .. coalesce(array_length(ops, 1), 0) LOOP
                n := i;
                result := NULL;
                state := NULL;
                message := NULL;
                expiry := NULLIF(expires[i], 0);
                BEGIN
                    CASE ops[i]
                    WHEN 'set' THEN
                        INSERT INTO kv (namespace, key, value, expires_at) VALUES (namespaces[i], keys[i], vals[i], expiry)
                        ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;
                    WHEN 'delete' THEN
                        DELETE FROM kv WHERE namespace = namespaces[i] AND key = keys[i]
                        RETURNING (kv.expires_at IS NULL OR kv.expires_at > at_ms)::text INTO result;
                    WHEN 'incr' THEN
                        -- The nested CASE keeps the numeric cast from ever seeing a value the
                        -- pattern did not pass; a non-integer or a sum past 64 bits is NULL,
                        -- which the NOT NULL constraint refuses (23502).
                        INSERT INTO kv (namespace, key, value, expires_at) VALUES (namespaces[i], keys[i], vals[i], expiry)
                        ON CONFLICT (namespace, key) DO UPDATE SET
                            value = CASE
                                WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= at_ms THEN EXCLUDED.value
                                WHEN kv.value ~ '^-?(0|[1-9][0-9]{0,18})$' THEN
                                    CASE WHEN kv.value::numeric + vals[i]::int8 BETWEEN -9223372036854775808 AND 9223372036854775807
                                         THEN (kv.value::numeric + vals[i]::int8)::text END
                                END,
                            expires_at = CASE WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= at_ms THEN EXCLUDED.expires_at ELSE kv.expires_at END
                        RETURNING kv.value INTO result;
                    WHEN 'add' THEN
                        INSERT INTO kv (namespace, key, value, expires_at) VALUES (namespaces[i], keys[i], vals[i], expiry)
                        ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
                            WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= at_ms
                        RETURNING 'true' INTO result;
                    WHEN 'cas' THEN
                        UPDATE kv SET value = vals[i], expires_at = expiry
                        WHERE namespace = namespaces[i] AND key = keys[i] AND value = expected[i] AND (kv.expires_at IS NULL OR kv.expires_at > at_ms)
                        RETURNING 'true' INTO result;
                    END CASE;
                EXCEPTION WHEN OTHERS THEN
                    state := SQLSTATE;
                    message := SQLERRM;
                END;
                RETURN NEXT;
            END LOOP;
        END
        $body$
        """
}
