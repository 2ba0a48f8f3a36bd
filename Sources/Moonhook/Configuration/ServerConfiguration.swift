import Foundation
import MoonhookStore
import LuaRuntime

/// Settings of `moonhook serve`, from `moonhook.yaml`, then `MOONHOOK_*` environment variables,
/// then command-line flags (each overriding the one before). See docs/configuration.md.
public struct ServerConfiguration: Sendable, Equatable {
    /// Address to listen on.
    public var host = "127.0.0.1"
    public var port = 8080
    /// The handlers folder: one subfolder per source.
    public var handlersFolder = "handlers"
    /// Where deliveries and KV data are stored (`sqlite:PATH` or `postgres://...`).
    public var store = "sqlite:data/moonhook.sqlite"
    /// Largest request body accepted, in bytes; larger ones get 413 while still being read.
    public var maxBodyBytes = 1 << 20
    /// Lua workers (one state each); default one per core.
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// Handler invocations run at once, across all workers.
    public var maxConcurrentInvocations = 256
    /// Limits for handlers.
    public var limits = LuaLimits()
    /// Bearer token for `/admin` (unset: the admin API is off).
    public var adminToken: String?
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    public var logLevel = "info"
    /// What handlers may reach with `http`.
    public var outbound = OutboundPolicy()
    /// How accepted deliveries are kept and dispatched.
    public var deliveries = DeliverySettings()
    /// Timeouts and the connection cap of the HTTP server.
    public var server = ServerSettings()
    /// Where `/metrics` is served.
    public var metrics = MetricsSettings()
    /// What is kept of refused requests.
    public var refusals = RefusalSettings()
    /// The operators' web console.
    public var console = ConsoleSettings()
    /// `trusted_proxies`: proxies whose `X-Forwarded-For` (or `Forwarded`) names the client
    /// (`allow_from`, kept refusals and logs use that address).
    public var trustedProxies: [IPRange] = []

    /// The `deliveries:` section of `moonhook.yaml`.
    public struct DeliverySettings: Sendable, Equatable {
        /// Deduplication window; finished deliveries are deleted once older than this.
        public var retention: Duration = .seconds(7 * 86400)
        /// How long a claimed (delivery, handler) pair stays with the process that claimed it
        /// without being renewed; after a crash, its pairs run again once their leases run out.
        public var lease: Duration = .seconds(30)
        /// How often the inbox is checked for due retries (new deliveries wake the dispatcher at once).
        public var pollInterval: Duration = .seconds(1)
        /// Whether the inbox is on disk before the 2xx (fsync). Off only to measure what it costs.
        public var durable = true
        /// How long one store call may wait for the database (a lock held by another process, an
        /// unreachable server) before it fails: an append then answers 503. SQLite's busy timeout.
        public var storeTimeout: Duration = .seconds(5)

        /// How the store is opened, from these settings.
        public var storeOptions: StoreOptions { StoreOptions(durable: durable, timeout: storeTimeout) }

        public init() {}
    }

    public init() {}

    /// The `host:port` form.
    public var listen: String { "\(host):\(port)" }

    /// Sets `listen` from `host:port` (or `:port`).
    public mutating func setListen(_ text: String, origin: String) throws(ConfigurationError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError(path: origin, "listen must be HOST:PORT, got '\(text)'")
        }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    /// The file's keys, all optional.
    struct File: Decodable {
        var listen: String?
        var handlers: String?
        var store: String?
        var max_body_bytes: Int?
        var workers: Int?
        var max_concurrent_invocations: Int?
        var admin_token: String?
        var log_level: String?
        var limits: Limits?
        var http: HTTP?
        var deliveries: Deliveries?
        var server: Server?
        var metrics: Metrics?
        var refusals: Refusals?
        var console: Console?
        var trusted_proxies: [String]?

        struct Deliveries: Decodable {
            var retention: String?
            var lease: String?
            var poll_interval: String?
            var durable: Bool?
            var store_timeout: String?
        }

        struct HTTP: Decodable {
            var allow: [String]?
            var max_calls: Int?
            var max_response_bytes: Int?
            var max_redirects: Int?
            var timeout_ms: Int?
        }

        struct Limits: Decodable {
            var memory_mb: Int?
            var instructions: Int64?
            var timeout_ms: Int64?
            var pattern_steps: Int64?
            var log_lines_per_second: Int?
            var log_line_bytes: Int?
            var log_bytes_per_invocation: Int?
        }
    }

    /// Loads the configuration: `file` (if it exists; it must when `required`), the environment,
    /// then whatever `overrides` sets.
    public static func load(file: String?, required: Bool, environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        if let file {
            if let data = FileManager.default.contents(atPath: file) {
                let text = String(decoding: data, as: UTF8.self)
                let parsed = try YAMLFile.decode(File.self, from: text, path: file, environment: environment)
                try configuration.apply(parsed, origin: file)
            } else if required {
                throw ConfigurationError(path: file, "cannot read the configuration file")
            }
        }
        try configuration.applyEnvironment(environment)
        return configuration
    }

    mutating func apply(_ file: File, origin: String) throws(ConfigurationError) {
        if let listen = file.listen { try setListen(listen, origin: origin) }
        if let handlers = file.handlers { handlersFolder = handlers }
        if let store = file.store { self.store = store }
        if let bytes = file.max_body_bytes { maxBodyBytes = try positive(bytes, "max_body_bytes", origin) }
        if let workers = file.workers { self.workers = try positive(workers, "workers", origin) }
        if let count = file.max_concurrent_invocations { maxConcurrentInvocations = try positive(count, "max_concurrent_invocations", origin) }
        if let token = file.admin_token, !token.isEmpty { adminToken = token }
        if let level = file.log_level { logLevel = try Self.checkLevel(level, origin) }
        if let http = file.http {
            for entry in http.allow ?? [] {
                if let range = IPRange(entry) {
                    outbound.allowedRanges.append(range)
                } else if !entry.isEmpty, !entry.contains("/") {
                    outbound.allowedHosts.insert(entry.lowercased())
                } else {
                    throw ConfigurationError(path: origin, "http.allow: '\(entry)' is neither a host name nor an address range")
                }
            }
            if let calls = http.max_calls { outbound.maxCallsPerInvocation = try positive(calls, "http.max_calls", origin) }
            if let bytes = http.max_response_bytes { outbound.maxResponseBytes = try positive(bytes, "http.max_response_bytes", origin) }
            if let redirects = http.max_redirects {
                guard redirects >= 0 else { throw ConfigurationError(path: origin, "http.max_redirects must be 0 or more") }
                outbound.maxRedirects = redirects
            }
            if let milliseconds = http.timeout_ms { outbound.defaultTimeout = .milliseconds(try positive(milliseconds, "http.timeout_ms", origin)) }
        }
        if let section = file.deliveries {
            func duration(_ text: String?, _ name: String) throws(ConfigurationError) -> Duration? {
                guard let text else { return nil }
                let value = try DurationText.parse(text, field: "deliveries.\(name)", path: origin)
                guard value > .zero else { throw ConfigurationError(path: origin, "deliveries.\(name) must be more than 0") }
                return value
            }
            if let value = try duration(section.retention, "retention") { deliveries.retention = value }
            if let value = try duration(section.lease, "lease") { deliveries.lease = value }
            if let value = try duration(section.poll_interval, "poll_interval") { deliveries.pollInterval = value }
            if let durable = section.durable { deliveries.durable = durable }
            if let value = try duration(section.store_timeout, "store_timeout") { deliveries.storeTimeout = value }
        }
        if let section = file.server { try server.apply(section, origin: origin) }
        if let section = file.metrics { try apply(section, origin: origin) }
        if let section = file.refusals { try apply(section, origin: origin) }
        if let section = file.console { try apply(section, origin: origin) }
        if let entries = file.trusted_proxies {
            trustedProxies = try entries.map { (entry) throws(ConfigurationError) in
                guard let range = IPRange(entry) else { throw ConfigurationError(path: origin, "trusted_proxies: '\(entry)' is not an address or a range such as 10.0.0.0/8") }
                return range
            }
        }
        if let limits = file.limits {
            if let megabytes = limits.memory_mb { self.limits.memoryBytes = try positive(megabytes, "limits.memory_mb", origin) << 20 }
            if let count = limits.instructions { self.limits.instructions = Int64(try positive(Int(count), "limits.instructions", origin)) }
            if let milliseconds = limits.timeout_ms { self.limits.wallClock = .milliseconds(try positive(Int(milliseconds), "limits.timeout_ms", origin)) }
            if let steps = limits.pattern_steps { self.limits.patternSteps = Int64(try positive(Int(steps), "limits.pattern_steps", origin)) }
            if let lines = limits.log_lines_per_second { self.limits.logLinesPerSecond = try positive(lines, "limits.log_lines_per_second", origin) }
            if let bytes = limits.log_line_bytes { self.limits.logLineBytes = try positive(bytes, "limits.log_line_bytes", origin) }
            if let bytes = limits.log_bytes_per_invocation {
                self.limits.logBytesPerInvocation = try positive(bytes, "limits.log_bytes_per_invocation", origin)
            }
        }
    }

    /// `MOONHOOK_LISTEN`, `MOONHOOK_HANDLERS`, `MOONHOOK_STORE`, `MOONHOOK_MAX_BODY_BYTES`,
    /// `MOONHOOK_WORKERS`, `MOONHOOK_ADMIN_TOKEN`, `MOONHOOK_LOG_LEVEL`.
    mutating func applyEnvironment(_ environment: [String: String]) throws(ConfigurationError) {
        if let listen = environment["MOONHOOK_LISTEN"] { try setListen(listen, origin: "MOONHOOK_LISTEN") }
        if let handlers = environment["MOONHOOK_HANDLERS"] { handlersFolder = handlers }
        if let store = environment["MOONHOOK_STORE"] { self.store = store }
        if let text = environment["MOONHOOK_MAX_BODY_BYTES"] { maxBodyBytes = try positive(Int(text) ?? 0, "MOONHOOK_MAX_BODY_BYTES", "environment") }
        if let text = environment["MOONHOOK_WORKERS"] { workers = try positive(Int(text) ?? 0, "MOONHOOK_WORKERS", "environment") }
        if let token = environment["MOONHOOK_ADMIN_TOKEN"], !token.isEmpty { adminToken = token }
        if let level = environment["MOONHOOK_LOG_LEVEL"] { logLevel = try Self.checkLevel(level, "environment") }
    }

    private func positive(_ value: Int, _ name: String, _ origin: String) throws(ConfigurationError) -> Int {
        guard value > 0 else { throw ConfigurationError(path: origin, "\(name) must be a positive whole number") }
        return value
    }

    static func checkLevel(_ level: String, _ origin: String) throws(ConfigurationError) -> String {
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(level) else { throw ConfigurationError(path: origin, "log_level must be one of \(levels.joined(separator: ", "))") }
        return level
    }
}
