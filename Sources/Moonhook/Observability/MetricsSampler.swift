import Foundation
import Logging
import MoonhookStore
import ServiceLifecycle

/// Sets the gauges that are read rather than counted, every `interval`: pairs by state and how
/// long the oldest due pair has waited, per source (one read of the open pairs, never one per
/// scrape; with several instances on PostgreSQL each reports the same store-wide value), and each
/// Lua worker's memory (apart, so that a worker busy with a long invocation never holds the
/// store gauges back).
struct MetricsSampler: Service {
    let metrics: ServerMetrics
    let store: any Store
    let sources: SourceDirectory
    let pool: WorkerPool
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await sampleStore() }
                group.addTask { await sampleWorkers() }
            }
        }
    }

    private func sampleStore() async {
        var last: OpenPairs?
        var failing = false
        while !Task.isCancelled {
            let served = Array(sources.catalog.sources.keys)
            do {
                let open = try await store.openPairs(now: Date())
                metrics.storeState(open, sources: served, now: Date())
                last = open
                if failing { logger.info("store gauges read again") }
                failing = false
            } catch {
                // What was waiting keeps waiting: its age goes on rising from the last read.
                if let last { metrics.storeState(last, sources: served, now: Date()) }
                if !failing { logger.warning("store gauges not read", metadata: ["error": "\(error)"]) }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func sampleWorkers() async {
        while !Task.isCancelled {
            for (index, worker) in pool.workers.enumerated() {
                metrics.luaMemory(worker: index, bytes: await worker.memoryUsed)
            }
            try? await Task.sleep(for: interval)
        }
    }
}
