import Foundation
import NIOCore
import SQLiteNIO
import Synchronization

/// Runs write work from many concurrent callers on one connection, batching whatever queued up
/// while the previous transaction committed into the next one (group commit): one fsync serves the
/// whole batch, so durability costs latency once per batch rather than once per request.
///
/// Work of the same kind in one batch (every append, every recorded outcome) is handed to one call
/// with all of its items, so that it can be written with one multi-row statement rather than a few
/// statements per item: through SQLiteNIO each statement is two thread hand-offs, which on a busy
/// machine cost more than the rows. Such work runs outside a transaction: each of its statements
/// commits (and is fsynced) on its own, so it must keep the database consistent statement by
/// statement. Other work runs in one transaction per batch.
///
/// A failed transaction is not blamed on every caller: its jobs are run again one transaction each,
/// so only the job that fails gets the error. When the transaction cannot even begin (the database is
/// locked past the busy timeout, or unreadable), every job waiting then fails at once: they have
/// waited as long as the batch did, and retrying each would make the last wait many timeouts.
final class GroupCommit: Sendable {
    /// One caller's unit of work. Jobs with the same `kind` in one transaction run as one call of
    /// the first one's `work`, which returns one result per item, in order.
    struct Job: Sendable {
        let kind: String?
        let item: any Sendable
        let work: @Sendable (isolated WriterThread, [any Sendable]) async throws -> [any Sendable]
        let done: @Sendable (Result<any Sendable, Error>) -> Void
    }

    /// Batch sizes so far.
    struct Statistics: Sendable, Equatable {
        var batches = 0
        var jobs = 0
        var largestBatch = 0
        /// Time spent writing batches.
        var busy: Duration = .zero
    }

    private struct State {
        var queue: [Job] = []
        var draining = false
        var statistics = Statistics()
    }

    private let thread: WriterThread
    private let state = Mutex(State())

    init(thread: WriterThread) {
        self.thread = thread
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    /// Runs `body` in a shared write transaction; returns its result once the transaction committed.
    func perform<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        try await submit(kind: nil, item: ()) { writer, _ in [try await body(writer.connection)] }
    }

    /// Writes `item` together with every other item of `kind` queued for the same batch: `work` gets
    /// them all and returns one result per item. It runs outside a transaction (see above).
    func perform<Item: Sendable, T: Sendable>(
        kind: String, item: Item, _ work: @escaping @Sendable (isolated WriterThread, [Item]) async throws -> [T]
    ) async throws -> T {
        try await submit(kind: kind, item: item) { writer, items in
            try await work(writer, items.map { $0 as! Item })
        }
    }

    private func submit<T: Sendable>(
        kind: String?, item: any Sendable, _ work: @escaping @Sendable (isolated WriterThread, [any Sendable]) async throws -> [any Sendable]
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let job = Job(kind: kind, item: item, work: work) { result in
                switch result {
                case .success(let value as T): continuation.resume(returning: value)
                case .success: continuation.resume(throwing: StoreError(.database, "a write returned the wrong kind of result"))
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
            let start = state.withLock { state -> Bool in
                state.queue.append(job)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if start { Task { await self.drain(on: self.thread) } }
        }
    }

    /// Runs on the writer's own thread (isolated to it), from the first statement to the last.
    private func drain(on writer: isolated WriterThread) async {
        while true {
            let batch = state.withLock { state -> [Job] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: true)
                if batch.isEmpty {
                    state.draining = false
                } else {
                    state.statistics.batches += 1
                    state.statistics.jobs += batch.count
                    state.statistics.largestBatch = max(state.statistics.largestBatch, batch.count)
                }
                return batch
            }
            if batch.isEmpty { return }
            let clock = ContinuousClock()
            let started = clock.now
            await run(batch, on: writer)
            let elapsed = clock.now - started
            state.withLock { $0.statistics.busy += elapsed }
        }
    }

    /// Runs one batch: each kind's items with one call of its `work` (its statements commit on
    /// their own, so a kind costs one round trip to the database, not three), then the jobs
    /// without a kind in one transaction.
    private func run(_ batch: [Job], on writer: isolated WriterThread) async {
        var kinds: [String: [Job]] = [:]
        var order: [String] = []
        var plain: [Job] = []
        for job in batch {
            guard let kind = job.kind else {
                plain.append(job)
                continue
            }
            if kinds[kind] == nil { order.append(kind) }
            kinds[kind, default: []].append(job)
        }
        // Appends first: a sender's request waits on them, nobody waits on the rest.
        for kind in order.sorted(by: { ($0 == Self.firstKind ? 0 : 1) < ($1 == Self.firstKind ? 0 : 1) }) {
            let jobs = kinds[kind]!
            do {
                let values = try await jobs[0].work(writer, jobs.map(\.item))
                guard values.count == jobs.count else {
                    throw StoreError(.database, "a batched write returned \(values.count) results for \(jobs.count) items")
                }
                for (job, value) in zip(jobs, values) { job.done(.success(value)) }
            } catch {
                let error = Self.storeError(error)
                if Self.isLocked(error) {
                    failAll(jobs + plain, error)
                    return
                }
                for job in jobs { job.done(.failure(error)) }
            }
        }
        if plain.isEmpty { return }
        switch await transaction(plain, on: writer) {
        case .committed(let results):
            for (job, result) in zip(plain, results) { job.done(.success(result)) }
        case .notBegun(let error):
            failAll(plain, error)
        case .failed(let error) where plain.count == 1:
            plain[0].done(.failure(error))
        case .failed:
            for job in plain {
                switch await transaction([job], on: writer) {
                case .committed(let results): job.done(.success(results[0]))
                case .notBegun(let error), .failed(let error): job.done(.failure(error))
                }
            }
        }
    }

    /// Fails `jobs` and every job waiting behind them: the database stayed locked past the busy
    /// timeout, and they have waited as long.
    private func failAll(_ jobs: [Job], _ error: Error) {
        let waiting = state.withLock { state in
            defer { state.queue.removeAll(keepingCapacity: true) }
            return state.queue
        }
        for job in jobs + waiting { job.done(.failure(error)) }
    }

    /// The kind written first in a batch.
    static let firstKind = "append"

    static func isLocked(_ error: Error) -> Bool {
        (storeError(error) as? StoreError)?.reason == .busy
    }

    private enum Outcome {
        /// One result per job.
        case committed([any Sendable])
        case notBegun(Error)
        case failed(Error)
    }

    /// Runs `jobs` in one transaction.
    private func transaction(_ jobs: [Job], on writer: isolated WriterThread) async -> Outcome {
        do {
            _ = try await writer.connection.query("BEGIN IMMEDIATE")
        } catch {
            return .notBegun(Self.storeError(error))
        }
        do {
            var results: [any Sendable] = []
            for job in jobs {
                let values = try await job.work(writer, [job.item])
                guard let value = values.first else { throw StoreError(.database, "a write returned no result") }
                results.append(value)
            }
            _ = try await writer.connection.query("COMMIT")
            return .committed(results)
        } catch {
            _ = try? await writer.connection.query("ROLLBACK")
            return .failed(Self.storeError(error))
        }
    }

    static func storeError(_ error: Error) -> Error {
        if let error = error as? SQLiteError { return SQLiteStore.storeError(error) }
        return error
    }
}

/// The inbox writer's connection and the thread it runs on. Every inbox transaction runs isolated
/// to this actor, whose executor is the connection's own event loop: between two statements of a
/// transaction the writer never waits for a thread of the shared concurrency pool, which under
/// load is busy with requests and would hold the database's write lock for its whole queue.
actor WriterThread {
    let connection: SQLiteConnection
    private let loop: any EventLoop

    init(connection: SQLiteConnection, loop: any EventLoop) {
        self.connection = connection
        self.loop = loop
    }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }
}
