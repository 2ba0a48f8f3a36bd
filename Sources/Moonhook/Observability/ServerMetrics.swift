import CoreMetrics
import Foundation
import LuaRuntime
import MoonhookStore
import Prometheus
import Synchronization

/// The server's metrics, in a Prometheus registry of its own (never the process-wide
/// `MetricsSystem`, so that several servers in one process, as in tests, count apart), exposed on
/// `GET /metrics`. Every metric is made through swift-metrics' API with this registry's factory.
///
/// Labels are bounded: sources are those served (an unknown one is `_unknown`), handlers are the
/// paths of loaded handlers, reasons and outcomes are fixed sets. docs/operations.md lists every
/// metric.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    /// (source, state) and source series of the store gauges last set, so that one gone to zero
    /// is set to zero rather than left at its last value.
    private let reported = Mutex<(pairs: Set<[String]>, oldest: Set<String>)>(([], []))

    /// The `source` label of a request to a source that is not served.
    public static let unknownSource = "_unknown"

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let milliseconds: [Int] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]
        factory.durationHistogramBuckets = [
            "moonhook_invocation_duration_seconds": milliseconds.map { .milliseconds($0) },
            "moonhook_outbound_duration_seconds": milliseconds.map { .milliseconds($0) },
            "moonhook_store_commit_duration_seconds": [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000].map { .microseconds(Int64($0 * 1000)) },
        ]
        factory.valueHistogramBuckets = ["moonhook_store_batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]]
        self.factory = factory
        Gauge(label: "moonhook_build_info", dimensions: [("version", MoonhookVersion.current)], factory: factory).record(1)
    }

    /// What the store reports through the same registry.
    public var store: StoreMetrics { StoreMetrics(factory: factory) }

    /// The exposition, in the Prometheus text format.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    // MARK: Receiving

    /// A request to `POST` or `GET /hooks/{source}` answered with `status`, with a body of `bytes`.
    func request(source: String, status: Int, bytes: Int) {
        Counter(label: "moonhook_requests_total", dimensions: [("source", source), ("status", String(status))], factory: factory).increment()
        if bytes > 0 { Counter(label: "moonhook_request_body_bytes_total", dimensions: [("source", source)], factory: factory).increment(by: bytes) }
    }

    func refusal(source: String, reason: RefusalReason) {
        Counter(label: "moonhook_refusals_total", dimensions: [("source", source), ("reason", reason.rawValue)], factory: factory).increment()
    }

    // MARK: Running handlers

    /// How an invocation ended, as the `outcome` label says it.
    enum InvocationOutcome: String {
        case ok, error, timeout, limit

        init(_ result: Result<[LuaValue], LuaError>) {
            switch result {
            case .success: self = .ok
            case .failure(let error):
                switch error.reason {
                case .deadline: self = .timeout
                case .memory, .instructionLimit: self = .limit
                default: self = .error
                }
            }
        }
    }

    func invocation(source: String, handler: String, outcome: LuaOutcome, duration: Duration) {
        let pair = [("source", source), ("handler", handler)]
        Counter(label: "moonhook_invocations_total", dimensions: pair + [("outcome", InvocationOutcome(outcome.result).rawValue)], factory: factory)
            .increment()
        Timer(label: "moonhook_invocation_duration_seconds", dimensions: pair, factory: factory).recordNanoseconds(duration.totalNanoseconds)
        if outcome.instructions > 0 {
            Counter(label: "moonhook_invocation_instructions_total", dimensions: pair, factory: factory).increment(by: Int(outcome.instructions))
        }
    }

    func retry(source: String, handler: String) {
        Counter(label: "moonhook_retries_total", dimensions: [("source", source), ("handler", handler)], factory: factory).increment()
    }

    func deadLetter(source: String, handler: String) {
        Counter(label: "moonhook_dead_letters_total", dimensions: [("source", source), ("handler", handler)], factory: factory).increment()
    }

    // MARK: Host APIs

    /// A `kv.*` call: `operation` is the function's name (`get`, `incr`, …), `ok` whether it returned.
    func keyValue(operation: String, ok: Bool) {
        Counter(label: "moonhook_kv_operations_total", dimensions: [("operation", operation), ("outcome", ok ? "ok" : "error")], factory: factory)
            .increment()
    }

    /// An `http.request` call: the final status (after redirects), or nil when none came back.
    func outbound(status: Int?, duration: Duration) {
        let statusClass = status.map { "\($0 / 100)xx" } ?? "error"
        Counter(label: "moonhook_outbound_requests_total", dimensions: [("status_class", statusClass)], factory: factory).increment()
        Timer(label: "moonhook_outbound_duration_seconds", dimensions: [], factory: factory).recordNanoseconds(duration.totalNanoseconds)
    }

    /// Bytes a Lua worker's state holds.
    func luaMemory(worker: Int, bytes: Int) {
        Gauge(label: "moonhook_lua_memory_bytes", dimensions: [("worker", String(worker))], factory: factory).record(bytes)
    }

    // MARK: Handlers folder

    /// A source folder loaded again after a change; `failed` when its problems kept the previous version serving.
    func reload(source: String, failed: Bool) {
        Counter(label: failed ? "moonhook_reload_failures_total" : "moonhook_reloads_total", dimensions: [("source", source)], factory: factory)
            .increment()
    }

    // MARK: Shared state

    /// Sets the store-wide gauges: pairs of each source by state, and the age of each source's
    /// oldest waiting delivery. `sources` are the sources served, reported at zero when idle.
    func storeState(_ counts: PairCounts, sources: [String], now: Date) {
        let states: [PairStatus] = [.pending, .running, .retry, .dead]
        var pairs: Set<[String]> = []
        var oldest: Set<String> = []
        for source in Set(sources).union(counts.bySource.keys) {
            for state in states {
                pairs.insert([source, state.rawValue])
                Gauge(label: "moonhook_pairs", dimensions: [("source", source), ("state", state.rawValue)], factory: factory)
                    .record(counts.bySource[source]?[state] ?? 0)
            }
            oldest.insert(source)
            let age = counts.oldestWaiting[source].map { max(0, now.timeIntervalSince($0)) } ?? 0
            Gauge(label: "moonhook_oldest_pending_age_seconds", dimensions: [("source", source)], factory: factory).record(age)
        }
        let (stalePairs, staleOldest) = reported.withLock { reported in
            defer { reported = (pairs, oldest) }
            return (reported.pairs.subtracting(pairs), reported.oldest.subtracting(oldest))
        }
        for key in stalePairs {
            Gauge(label: "moonhook_pairs", dimensions: [("source", key[0]), ("state", key[1])], factory: factory).record(0)
        }
        for source in staleOldest {
            Gauge(label: "moonhook_oldest_pending_age_seconds", dimensions: [("source", source)], factory: factory).record(0)
        }
    }
}
