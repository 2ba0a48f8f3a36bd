extension ServerConfiguration {
    /// The `console:` section of `moonhook.yaml`. The console itself is on whenever `admin_token` is set.
    public struct ConsoleSettings: Sendable, Equatable {
        /// How long a sign-in lasts.
        public var sessionTTL: Duration = .seconds(12 * 3600)

        public init() {}
    }
}

extension ServerConfiguration.File {
    struct Console: Decodable {
        var session_ttl: String?
    }
}

extension ServerConfiguration {
    mutating func apply(_ section: File.Console, origin: String) throws(ConfigurationError) {
        if let text = section.session_ttl {
            let value = try DurationText.parse(text, field: "console.session_ttl", path: origin)
            guard value >= .seconds(60) else { throw ConfigurationError(path: origin, "console.session_ttl must be at least 1m") }
            console.sessionTTL = value
        }
    }
}
