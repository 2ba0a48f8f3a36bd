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
    /// Handles made so far, by name and label values: making one goes through the registry's lock
    /// and checks the name and labels again, on every request otherwise.
    private let counters = HandleCache<[String], CoreMetrics.Counter>()
    private let timers = HandleCache<[String], CoreMetrics.Timer>()
    /// The series every request or invocation touches, by their label values alone.
    private let requestSeries = HandleCache<LabelPair<String, Int>, CoreMetrics.Counter>()
    private let bodySeries = HandleCache<String, CoreMetrics.Counter>()
    private let refusalSeries = HandleCache<LabelPair<String, RefusalReason>, CoreMetrics.Counter>()
    private let invocationSeries = HandleCache<LabelPair<String, String>, InvocationSeries>()
    private let keyValueSeries = HandleCache<LabelPair<String, Bool>, CoreMetrics.Counter>()

    /// Two label values, as a cache key.
    private struct LabelPair<First: Hashable & Sendable, Second: Hashable & Sendable>: Hashable, Sendable {
        let first: First
        let second: Second

        init(_ first: First, _ second: Second) {
            self.first = first
            self.second = second
        }
    }

    /// A handler's invocation series: a counter per outcome, the duration, the instructions.
    private struct InvocationSeries: Sendable {
        let outcomes: [InvocationOutcome: CoreMetrics.Counter]
        let duration: CoreMetrics.Timer
        let instructions: CoreMetrics.Counter
    }

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

    /// The counter `name` with `labels` (names and values, always in the same order).
    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        counters.handle([name] + labels.map(\.1)) { Counter(label: name, dimensions: labels, factory: factory) }
    }

    private func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        timers.handle([name] + labels.map(\.1)) { Timer(label: name, dimensions: labels, factory: factory) }
    }

    /// Exposes a source's counters at zero as soon as it is served, so that the first dead letter,
    /// refusal or failed reload is an increase Prometheus sees (a series born at 1 has none).
    func prepare(source: String, handlers: [String]) {
        for handler in handlers {
            let pair = [("source", source), ("handler", handler)]
            _ = counter("moonhook_dead_letters_total", pair)
            _ = counter("moonhook_retries_total", pair)
            for outcome in ["ok", "error", "timeout", "limit"] { _ = counter("moonhook_invocations_total", pair + [("outcome", outcome)]) }
        }
        for reason in RefusalReason.allCases { _ = counter("moonhook_refusals_total", [("source", source), ("reason", reason.rawValue)]) }
        _ = counter("moonhook_reloads_total", [("source", source)])
        _ = counter("moonhook_reload_failures_total", [("source", source)])
    }

    /// What the store reports through the same registry.
    public var store: StoreMetrics { StoreMetrics(factory: factory) }

    /// The exposition, in the Prometheus text format.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    // MARK: Receiving

    /// A request to `POST` or `GET /hooks/{source}` answered with `status`, with a body of `bytes`.
    func request(source: String, status: Int, bytes: Int) {
        requestSeries.handle(LabelPair(source, status)) {
            counter("moonhook_requests_total", [("source", source), ("status", String(status))])
        }.increment()
        if bytes > 0 {
            bodySeries.handle(source) { counter("moonhook_request_body_bytes_total", [("source", source)]) }.increment(by: bytes)
        }
    }

    func refusal(source: String, reason: RefusalReason) {
        refusalSeries.handle(LabelPair(source, reason)) {
            counter("moonhook_refusals_total", [("source", source), ("reason", reason.rawValue)])
        }.increment()
    }

    // MARK: Running handlers

    /// How an invocation ended, as the `outcome` label says it.
    enum InvocationOutcome: String, CaseIterable, Sendable {
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
        let series = invocationSeries.handle(LabelPair(source, handler)) {
            let pair = [("source", source), ("handler", handler)]
            return InvocationSeries(
                outcomes: Dictionary(uniqueKeysWithValues: InvocationOutcome.allCases.map { ($0, counter("moonhook_invocations_total", pair + [("outcome", $0.rawValue)])) }),
                duration: timer("moonhook_invocation_duration_seconds", pair),
                instructions: counter("moonhook_invocation_instructions_total", pair))
        }
        series.outcomes[InvocationOutcome(outcome.result)]?.increment()
        series.duration.recordNanoseconds(duration.totalNanoseconds)
        if outcome.instructions > 0 { series.instructions.increment(by: Int(outcome.instructions)) }
    }

    func retry(source: String, handler: String) {
        counter("moonhook_retries_total", [("source", source), ("handler", handler)]).increment()
    }

    func deadLetter(source: String, handler: String) {
        counter("moonhook_dead_letters_total", [("source", source), ("handler", handler)]).increment()
    }

    // MARK: Host APIs

    /// A `kv.*` call: `operation` is the function's name (`get`, `incr`, …), `ok` whether it returned.
    func keyValue(operation: String, ok: Bool) {
        keyValueSeries.handle(LabelPair(operation, ok)) {
            counter("moonhook_kv_operations_total", [("operation", operation), ("outcome", ok ? "ok" : "error")])
        }.increment()
    }

    /// An `http.request` call: the final status (after redirects), or nil when none came back.
    func outbound(status: Int?, duration: Duration) {
        let statusClass = status.map { "\($0 / 100)xx" } ?? "error"
        counter("moonhook_outbound_requests_total", [("status_class", statusClass)]).increment()
        timer("moonhook_outbound_duration_seconds", []).recordNanoseconds(duration.totalNanoseconds)
    }

    /// Bytes a Lua worker's state holds.
    func luaMemory(worker: Int, bytes: Int) {
        Gauge(label: "moonhook_lua_memory_bytes", dimensions: [("worker", String(worker))], factory: factory).record(bytes)
    }

    // MARK: Handlers folder

    /// A source folder loaded again after a change; `failed` when its problems kept the previous version serving.
    func reload(source: String, failed: Bool) {
        counter(failed ? "moonhook_reload_failures_total" : "moonhook_reloads_total", [("source", source)]).increment()
    }

    // MARK: Shared state

    /// Sets the store-wide gauges: pairs of each source by state, and how long each source's
    /// oldest due pair has waited. `sources` are the sources served, reported at zero when idle.
    func storeState(_ open: OpenPairs, sources: [String], now: Date) {
        let states: [PairStatus] = [.pending, .running, .retry, .dead]
        var pairs: Set<[String]> = []
        var oldest: Set<String> = []
        for source in Set(sources).union(open.bySource.keys) {
            for state in states {
                pairs.insert([source, state.rawValue])
                Gauge(label: "moonhook_pairs", dimensions: [("source", source), ("state", state.rawValue)], factory: factory)
                    .record(open.bySource[source]?[state] ?? 0)
            }
            oldest.insert(source)
            let age = open.oldestDue[source].map { max(0, now.timeIntervalSince($0)) } ?? 0
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
