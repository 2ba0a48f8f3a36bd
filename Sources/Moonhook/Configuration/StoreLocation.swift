import Logging
import MoonhookStore

/// Where the server keeps its state, parsed from the `store` setting.
public enum StoreLocation {
    /// `sqlite:PATH`: the embedded default.
    case sqlite(path: String)
    /// `postgres://…`: shared by several servers.
    case postgres(url: String)

    public init(_ text: String) throws(ConfigurationError) {
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw ConfigurationError(path: "store", "sqlite: needs a file path, e.g. sqlite:data/moonhook.sqlite") }
            self = .sqlite(path: path)
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else {
            throw ConfigurationError(path: "store", "must be sqlite:PATH or postgres://..., got '\(text)'")
        }
    }

    public func open(logger: Logger, durable: Bool = true) async throws -> SQLiteStore {
        switch self {
        case .sqlite(let path):
            return try await SQLiteStore.open(path: path, logger: logger, durable: durable)
        case .postgres:
            throw ConfigurationError(path: "store", "PostgreSQL storage is not available yet; use sqlite:PATH")
        }
    }
}
