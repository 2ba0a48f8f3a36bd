import Foundation
import NIOCore
import SQLiteNIO
import Synchronization

/// Runs write work from many concurrent callers on one connection, batching whatever queued up
/// while the previous transaction committed into the next one (group commit): one transaction and
/// one fsync serve the whole batch, so durability costs latency once per batch rather than once per
/// request. Deliveries' appends, attempts' outcomes and handlers' key-value writes all share it.
///
/// Work of the same kind in one batch (every append, every recorded outcome) is handed to one call
/// with all of its items, so that it can be written with one multi-row statement rather than a few
/// statements per item: through SQLiteNIO each statement is two thread hand-offs, which on a busy
/// machine cost more than the rows.
///
/// A failure belongs to the work that failed, never to the batch. In a batch of more than one
/// kind, each kind, and the plain jobs together, run inside a savepoint: when one fails, its savepoint is rolled back and its jobs run
/// again each in a savepoint of its own, so that only the job that fails gets the error, and the
/// rest of the batch commits. (Work can also give one item its own failure as its result: a
/// key-value write that cannot be done, such as an increment of a non-integer, fails only its own
/// call that way.) Only when the database itself fails (locked past the busy timeout, unwritable)
/// does the whole batch fail, and when it stayed locked, every job waiting then fails with it: they
/// have waited as long as the batch did. Nobody hears success before the commit.
///
/// Closing (`close`) lets the work already queued finish and refuses work that comes after: the
/// writer's event loop is shut down next, and a job left for it then would wait forever.
final class GroupCommit: Sendable {
    typealias Outcome = Result<any Sendable, Error>

    /// One caller's unit of work. Jobs with the same `kind` in one batch run as one call of the
    /// first one's `work`, which returns one outcome per item, in order; a job without a kind runs
    /// its `work` alone.
    struct Job: Sendable {
        let kind: String?
        let item: any Sendable
        let work: @Sendable (isolated WriterThread, [any Sendable]) async throws -> [Outcome]
        let done: @Sendable (Outcome) -> Void
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
        var closed = false
        var statistics = Statistics()
    }

    private let thread: WriterThread
    private let state = Mutex(State())
    private let metrics: StoreMetrics

    init(thread: WriterThread, metrics: StoreMetrics = .off) {
        self.thread = thread
        self.metrics = metrics
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    /// Runs `body` in the next batch's transaction, in a savepoint of its own when it fails;
    /// returns its result once the transaction committed.
    func perform<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        try await submit(kind: nil, item: ()) { writer, _ in [.success(try await body(writer.connection))] }
    }

    /// Writes `item` together with every other item of `kind` queued for the same batch: `work` gets
    /// them all and returns one result per item.
    func perform<Item: Sendable, T: Sendable>(
        kind: String, item: Item, _ work: @escaping @Sendable (isolated WriterThread, [Item]) async throws -> [T]
    ) async throws -> T {
        try await submit(kind: kind, item: item) { writer, items in
            try await work(writer, items.map { $0 as! Item }).map { .success($0) }
        }
    }

    private func submit<T: Sendable>(
        kind: String?, item: any Sendable, _ work: @escaping @Sendable (isolated WriterThread, [any Sendable]) async throws -> [Outcome]
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let job = Job(kind: kind, item: item, work: work) { [metrics] result in
                switch result {
                case .success(let value as T): continuation.resume(returning: value)
                case .success: continuation.resume(throwing: StoreError(.database, "a write returned the wrong kind of result"))
                case .failure(let error):
                    metrics.writeErrors.increment()
                    continuation.resume(throwing: Self.storeError(error))
                }
            }
            let start = state.withLock { state -> Bool? in
                guard !state.closed else { return nil }
                state.queue.append(job)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            switch start {
            case nil: job.done(.failure(StoreError(.unavailable, "the store is closed")))
            case true?: Task { await self.drain(on: self.thread) }
            case false?: break
            }
        }
    }

    /// Refuses further work, then waits until the work already queued has been written (or has
    /// failed): after this, nothing runs on the writer's thread.
    func close() async {
        state.withLock { $0.closed = true }
        while state.withLock({ $0.draining }) {
            try? await Task.sleep(for: .milliseconds(5))
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
            metrics.batch(size: batch.count, duration: elapsed)
        }
    }

    /// The database failed under the whole batch: nothing of it is kept.
    private struct BatchFailure: Error {
        let error: Error
    }

    /// Runs one batch in one transaction: each kind's items with one call of its `work` (appends
    /// first: a sender's request waits on them), then the plain jobs.
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
        order.sort { ($0 == Self.firstKind ? 0 : 1) < ($1 == Self.firstKind ? 0 : 1) }
        if order.count + (plain.isEmpty ? 0 : 1) == 1 {
            await runAlone(plain.isEmpty ? kinds[order[0]]! : plain, batch: batch, on: writer)
            return
        }
        var finished: [(Job, Outcome)] = []
        finished.reserveCapacity(batch.count)
        do {
            try await execute("BEGIN IMMEDIATE", on: writer)
            for kind in order {
                let jobs = kinds[kind]!
                finished += try await runTogether(jobs, on: writer) { try await jobs[0].work(writer, jobs.map(\.item)) }
            }
            if !plain.isEmpty {
                finished += try await runTogether(plain, on: writer) {
                    var outcomes: [Outcome] = []
                    for job in plain { outcomes.append(try await Self.single(job, on: writer)) }
                    return outcomes
                }
            }
            try await execute("COMMIT", on: writer)
        } catch {
            let cause = (error as? BatchFailure)?.error ?? error
            try? await execute("ROLLBACK", on: writer)
            if Self.isLocked(cause) {
                failAll(batch, cause)
            } else {
                for job in batch { job.done(.failure(cause)) }
            }
            return
        }
        for (job, outcome) in finished { job.done(outcome) }
    }

    /// A batch of one kind, or of plain jobs only: its transaction needs no savepoint (each
    /// statement is two thread hand-offs, which a loaded machine makes slow). When the work fails,
    /// the transaction is rolled back and, if it held several jobs, each runs again in a
    /// transaction of its own, so that only the one that fails gets the error.
    private func runAlone(_ jobs: [Job], batch: [Job], on writer: isolated WriterThread) async {
        func together() async throws -> [Outcome] {
            if jobs[0].kind == nil {
                var outcomes: [Outcome] = []
                for job in jobs { outcomes.append(try await Self.single(job, on: writer)) }
                return outcomes
            }
            let outcomes = try await jobs[0].work(writer, jobs.map(\.item))
            guard outcomes.count == jobs.count else {
                throw StoreError(.database, "a batched write returned \(outcomes.count) results for \(jobs.count) items")
            }
            return outcomes
        }
        do {
            try await execute("BEGIN IMMEDIATE", on: writer)
            let outcomes = try await together()
            try await execute("COMMIT", on: writer)
            for (job, outcome) in zip(jobs, outcomes) { job.done(outcome) }
            return
        } catch {
            let cause = Self.storeError((error as? BatchFailure)?.error ?? error)
            try? await execute("ROLLBACK", on: writer)
            if error is BatchFailure || Self.failsBatch(cause) || jobs.count == 1 {
                if Self.isLocked(cause) { failAll(batch, cause) } else { for job in jobs { job.done(.failure(cause)) } }
                return
            }
        }
        for job in jobs {
            do {
                try await execute("BEGIN IMMEDIATE", on: writer)
                let outcome = try await Self.single(job, on: writer)
                try await execute("COMMIT", on: writer)
                job.done(outcome)
            } catch {
                try? await execute("ROLLBACK", on: writer)
                job.done(.failure(Self.storeError((error as? BatchFailure)?.error ?? error)))
            }
        }
    }

    /// Runs `work` for `jobs` in one savepoint; when it fails, each job again in a savepoint of
    /// its own, so that only the one that fails gets the error.
    private func runTogether(
        _ jobs: [Job], on writer: isolated WriterThread, _ work: () async throws -> [Outcome]
    ) async throws -> [(Job, Outcome)] {
        let together = try await inSavepoint(on: writer) {
            let outcomes = try await work()
            guard outcomes.count == jobs.count else {
                throw StoreError(.database, "a batched write returned \(outcomes.count) results for \(jobs.count) items")
            }
            return outcomes
        }
        switch together {
        case .success(let outcomes):
            return Array(zip(jobs, outcomes))
        case .failure(let error) where jobs.count == 1:
            return [(jobs[0], .failure(error))]
        case .failure:
            var finished: [(Job, Outcome)] = []
            for job in jobs {
                switch try await inSavepoint(on: writer, { [try await Self.single(job, on: writer)] }) {
                case .success(let outcomes): finished.append((job, outcomes[0]))
                case .failure(let error): finished.append((job, .failure(error)))
                }
            }
            return finished
        }
    }

    private static func single(_ job: Job, on writer: isolated WriterThread) async throws -> Outcome {
        guard let outcome = try await job.work(writer, [job.item]).first else { throw StoreError(.database, "a write returned no result") }
        return outcome
    }

    /// Runs `body` inside a savepoint: its error rolls back what it wrote and is returned; an error
    /// of the database itself (locked, unwritable), or a savepoint that cannot be rolled back,
    /// fails the whole batch.
    private func inSavepoint(
        on writer: isolated WriterThread, _ body: () async throws -> [Outcome]
    ) async throws -> Result<[Outcome], Error> {
        try await execute("SAVEPOINT work", on: writer)
        do {
            let outcomes = try await body()
            try await execute("RELEASE work", on: writer)
            return .success(outcomes)
        } catch {
            let error = Self.storeError(error)
            if Self.failsBatch(error) { throw BatchFailure(error: error) }
            try await execute("ROLLBACK TO work", on: writer)
            try await execute("RELEASE work", on: writer)
            return .failure(error)
        }
    }

    private func execute(_ sql: String, on writer: isolated WriterThread) async throws {
        do {
            _ = try await writer.connection.query(sql)
        } catch {
            throw BatchFailure(error: Self.storeError(error))
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

    /// Whether `error` is the database failing rather than the work: it may have rolled back the
    /// whole transaction.
    static func failsBatch(_ error: Error) -> Bool {
        guard let error = storeError(error) as? StoreError else { return false }
        return error.reason == .busy || error.reason == .unavailable
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
