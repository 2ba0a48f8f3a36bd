extension ServerConfiguration {
    /// The `server:` section of `moonhook.yaml`: how long a sender may take over a request, and how
    /// many connections may be open at once, so that slow or stalled senders cannot hold the
    /// server's file descriptors.
    public struct ServerSettings: Sendable, Equatable {
        /// The whole time to receive a request's head, from the connection opening (or the first
        /// byte after a keep-alive pause). A total, not a gap: a sender trickling a byte every few
        /// seconds is cut off too.
        public var headerTimeout: Duration = .seconds(10)
        /// The whole time to receive a request's body, from its head.
        public var bodyTimeout: Duration = .seconds(30)
        /// How long a keep-alive connection may wait between requests.
        public var idleTimeout: Duration = .seconds(60)
        /// Connections open at once; further ones wait in the listen queue until one closes.
        public var maxConnections = 4096

        public init() {}
    }
}

extension ServerConfiguration.File {
    struct Server: Decodable {
        var header_timeout: String?
        var body_timeout: String?
        var idle_timeout: String?
        var max_connections: Int?
    }
}

extension ServerConfiguration.ServerSettings {
    mutating func apply(_ section: ServerConfiguration.File.Server, origin: String) throws(ConfigurationError) {
        func duration(_ text: String?, _ name: String) throws(ConfigurationError) -> Duration? {
            guard let text else { return nil }
            let value = try DurationText.parse(text, field: "server.\(name)", path: origin)
            guard value > .zero else { throw ConfigurationError(path: origin, "server.\(name) must be more than 0") }
            return value
        }
        if let value = try duration(section.header_timeout, "header_timeout") { headerTimeout = value }
        if let value = try duration(section.body_timeout, "body_timeout") { bodyTimeout = value }
        if let value = try duration(section.idle_timeout, "idle_timeout") { idleTimeout = value }
        if let count = section.max_connections {
            guard count > 0 else { throw ConfigurationError(path: origin, "server.max_connections must be a positive whole number") }
            maxConnections = count
        }
    }
}
