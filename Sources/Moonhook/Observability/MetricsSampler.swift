import Foundation
import Logging
import MoonhookStore
import ServiceLifecycle

/// Sets the gauges that are read rather than counted, every `interval`: pairs by state and the
/// oldest waiting delivery per source (one query of the store, never one per scrape; with several
/// instances on PostgreSQL each reports the same store-wide value), and each Lua worker's memory.
struct MetricsSampler: Service {
    let metrics: ServerMetrics
    let store: any Store
    let sources: SourceDirectory
    let pool: WorkerPool
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    let counts = try await store.pairCounts()
                    metrics.storeState(counts, sources: Array(sources.catalog.sources.keys), now: Date())
                    if failing { logger.info("store gauges read again") }
                    failing = false
                } catch {
                    // Left at their last values; the store's own failure shows on /readyz.
                    if !failing { logger.warning("store gauges not read", metadata: ["error": "\(error)"]) }
                    failing = true
                }
                for (index, worker) in pool.workers.enumerated() {
                    metrics.luaMemory(worker: index, bytes: await worker.memoryUsed)
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
