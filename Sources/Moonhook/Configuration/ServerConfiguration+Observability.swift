extension ServerConfiguration {
    /// The `metrics:` section of `moonhook.yaml`.
    public struct MetricsSettings: Sendable, Equatable {
        /// A listener of its own serving `GET /metrics` without authentication (meant for a
        /// loopback or private address). Unset: `/metrics` is served on the main listener only,
        /// behind the admin token.
        public var listen: Address?
        /// How often the gauges of shared state (pairs by state, oldest pending) are read from the store.
        public var storeInterval: Duration = .seconds(5)

        public struct Address: Sendable, Equatable {
            public var host: String
            public var port: Int

            public init(host: String, port: Int) {
                self.host = host
                self.port = port
            }
        }

        public init() {}
    }

    /// The `refusals:` section of `moonhook.yaml`: what is kept of refused requests, in memory,
    /// per instance (`GET /admin/refusals`, `moonhook refusals`).
    public struct RefusalSettings: Sendable, Equatable {
        /// Refused requests kept per source (the oldest goes first).
        public var keep = 100
        /// Bytes of each refused request's body kept (secrets redacted).
        public var bodyBytes = 256

        public init() {}
    }
}

extension ServerConfiguration.File {
    struct Metrics: Decodable {
        var listen: String?
        var store_interval: String?
    }

    struct Refusals: Decodable {
        var keep: Int?
        var body_bytes: Int?
    }
}

extension ServerConfiguration {
    mutating func apply(_ section: File.Metrics, origin: String) throws(ConfigurationError) {
        if let text = section.listen {
            var address = ServerConfiguration()
            try address.setListen(text, origin: origin)
            metrics.listen = MetricsSettings.Address(host: address.host, port: address.port)
        }
        if let text = section.store_interval {
            let value = try DurationText.parse(text, field: "metrics.store_interval", path: origin)
            guard value > .zero else { throw ConfigurationError(path: origin, "metrics.store_interval must be more than 0") }
            metrics.storeInterval = value
        }
    }

    mutating func apply(_ section: File.Refusals, origin: String) throws(ConfigurationError) {
        if let keep = section.keep {
            guard keep >= 0 else { throw ConfigurationError(path: origin, "refusals.keep must be 0 or more") }
            refusals.keep = keep
        }
        if let bytes = section.body_bytes {
            guard bytes >= 0 else { throw ConfigurationError(path: origin, "refusals.body_bytes must be 0 or more") }
            refusals.bodyBytes = bytes
        }
    }
}
