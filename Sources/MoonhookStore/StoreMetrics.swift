import CoreMetrics

/// What the store reports of its writes, through swift-metrics: each batch's size and commit time,
/// deliveries appended, and writes that failed. The server hands in its own factory (Prometheus on
/// `/metrics`); without one, nothing is recorded.
public struct StoreMetrics: Sendable {
    let batchSize: Recorder
    let commitDuration: Timer
    let appends: Counter
    let writeErrors: Counter

    public init(factory: any MetricsFactory) {
        batchSize = Recorder(label: "moonhook_store_batch_size", dimensions: [], factory: factory)
        commitDuration = Timer(label: "moonhook_store_commit_duration_seconds", dimensions: [], factory: factory)
        appends = Counter(label: "moonhook_store_appends_total", dimensions: [], factory: factory)
        writeErrors = Counter(label: "moonhook_store_write_errors_total", dimensions: [], factory: factory)
    }

    /// Records nothing.
    public static let off = StoreMetrics(factory: NOOPMetricsHandler.instance)

    /// One batch written (committed or not) with `size` writes in `duration`.
    func batch(size: Int, duration: Duration) {
        batchSize.record(size)
        commitDuration.recordNanoseconds(duration.totalNanoseconds)
    }
}
