import Synchronization

/// Gathers writes of one kind from concurrent callers and hands whatever queued up while the
/// previous batch was being written to one call of `work` (one statement, one commit for all).
///
/// When a batch fails as a whole and held more than one item, its items are written again one by
/// one, so that only the item that fails gets the error; when the database is unavailable, every
/// item waiting fails at once, since each would wait as long again.
///
/// Closing (`close`) lets the items already queued be written and refuses later ones: the
/// connections go next, and an item written then could commit while its caller heard an error.
final class WriteBatcher<Item: Sendable, Output: Sendable>: Sendable {
    private struct Waiting: Sendable {
        let item: Item
        let continuation: CheckedContinuation<Output, Error>
    }

    private struct State: Sendable {
        var queue: [Waiting] = []
        var draining = false
        var closed = false
        var statistics = WriteStatistics()
    }

    private let work: @Sendable ([Item]) async throws -> [Output]
    private let state = Mutex(State())
    private let metrics: StoreMetrics

    /// - Parameter work: writes the items and returns one output per item, in order.
    init(metrics: StoreMetrics = .off, work: @escaping @Sendable ([Item]) async throws -> [Output]) {
        self.metrics = metrics
        self.work = work
    }

    var statistics: WriteStatistics { state.withLock { $0.statistics } }

    /// Writes `item` with whatever else is queued; returns its output once the batch committed.
    func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool? in
                guard !state.closed else { return nil }
                state.queue.append(Waiting(item: item, continuation: continuation))
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            // One drainer at a time, started by the first caller of an idle batcher and ending
            // when the queue is empty.
            switch start {
            case nil: continuation.resume(throwing: StoreError(.unavailable, "the store is closed"))
            case true?: Task { await self.drain() }
            case false?: break
            }
        }
    }

    /// Refuses further items, then waits until those already queued have been written (or have
    /// failed).
    func close() async {
        state.withLock { $0.closed = true }
        while state.withLock({ $0.draining }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: true)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            let clock = ContinuousClock()
            let started = clock.now
            await write(batch)
            let elapsed = clock.now - started
            state.withLock { state in
                state.statistics.batches += 1
                state.statistics.writes += batch.count
                state.statistics.largestBatch = max(state.statistics.largestBatch, batch.count)
                state.statistics.busy += elapsed
            }
            metrics.batch(size: batch.count, duration: elapsed)
        }
    }

    private func write(_ batch: [Waiting]) async {
        do {
            let outputs = try await work(batch.map(\.item))
            guard outputs.count == batch.count else {
                throw StoreError(.database, "a batched write returned \(outputs.count) results for \(batch.count) items")
            }
            for (waiting, output) in zip(batch, outputs) { waiting.continuation.resume(returning: output) }
        } catch let error as StoreError where error.reason == .unavailable || batch.count == 1 {
            metrics.writeErrors.increment(by: batch.count)
            for waiting in batch { waiting.continuation.resume(throwing: error) }
        } catch {
            for waiting in batch {
                do {
                    let outputs = try await work([waiting.item])
                    guard let output = outputs.first else { throw StoreError(.database, "a write returned no result") }
                    waiting.continuation.resume(returning: output)
                } catch {
                    metrics.writeErrors.increment()
                    waiting.continuation.resume(throwing: error)
                }
            }
        }
    }
}
