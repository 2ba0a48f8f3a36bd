import Foundation
import SQLiteNIO
import Synchronization

/// Runs write work from many concurrent callers on one connection, batching whatever queued up
/// while the previous transaction committed into the next one (group commit): one fsync serves the
/// whole batch, so durability costs latency once per batch rather than once per request.
///
/// A failed batch is not blamed on every caller: its jobs are run again one transaction each, so
/// only the job that fails (or every job, when the database itself fails) gets the error.
final class GroupCommit: Sendable {
    /// One unit of work; runs inside a transaction and reports its own result once committed.
    struct Job: Sendable {
        let work: @Sendable (SQLiteConnection) async throws -> Void
        let done: @Sendable (Error?) -> Void
    }

    /// Batch sizes so far.
    struct Statistics: Sendable, Equatable {
        var transactions = 0
        var jobs = 0
        var largestBatch = 0
    }

    private struct State {
        var queue: [Job] = []
        var draining = false
        var statistics = Statistics()
    }

    private let connection: SQLiteConnection
    private let state = Mutex(State())

    init(connection: SQLiteConnection) {
        self.connection = connection
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    /// Runs `body` in a shared write transaction; returns its result once the transaction committed.
    func perform<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        let result = ResultBox<T>()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let job = Job(
                work: { connection in
                    let value = try await body(connection)
                    result.value.withLock { $0 = value }
                },
                done: { error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let value = result.value.withLock({ $0 }) {
                        continuation.resume(returning: value)
                    } else {
                        continuation.resume(throwing: StoreError(.database, "a write finished without a result"))
                    }
                })
            let start = state.withLock { state -> Bool in
                state.queue.append(job)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Job] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: true)
                if batch.isEmpty {
                    state.draining = false
                } else {
                    state.statistics.transactions += 1
                    state.statistics.jobs += batch.count
                    state.statistics.largestBatch = max(state.statistics.largestBatch, batch.count)
                }
                return batch
            }
            if batch.isEmpty { return }
            if let error = await transaction(batch) {
                if batch.count == 1 {
                    batch[0].done(error)
                } else {
                    for job in batch { job.done(await transaction([job])) }
                }
            } else {
                for job in batch { job.done(nil) }
            }
        }
    }

    /// Runs `jobs` in one transaction; the error if it did not commit.
    private func transaction(_ jobs: [Job]) async -> Error? {
        do {
            _ = try await connection.query("BEGIN IMMEDIATE")
        } catch {
            return Self.storeError(error)
        }
        do {
            for job in jobs { try await job.work(connection) }
            _ = try await connection.query("COMMIT")
            return nil
        } catch {
            _ = try? await connection.query("ROLLBACK")
            return Self.storeError(error)
        }
    }

    static func storeError(_ error: Error) -> Error {
        if let error = error as? SQLiteError { return StoreError(.database, "database error: \(error.message)") }
        return error
    }
}

/// Where a job leaves its result until its transaction commits.
private final class ResultBox<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
}
