import Logging

/// Where the server keeps its state, parsed from the `store` setting, and the one place that
/// knows which engine each kind of location opens.
public enum StoreLocation: Sendable, Equatable {
    /// `sqlite:PATH`: the embedded default.
    case sqlite(path: String)
    /// `postgres://…`: shared by several servers.
    case postgres(url: String)

    /// - Throws: `StoreError(.configuration)` with the reason in one line.
    public init(_ text: String) throws(StoreError) {
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw StoreError(.configuration, "sqlite: needs a file path, e.g. sqlite:data/moonhook.sqlite") }
            self = .sqlite(path: path)
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            _ = try PostgresURL(text)
            self = .postgres(url: text)
        } else {
            throw StoreError(.configuration, "must be sqlite:PATH or postgres://..., got '\(text)'")
        }
    }

    /// Opens the store, bringing its schema up to date.
    public func open(logger: Logger, options: StoreOptions = StoreOptions()) async throws -> any Store {
        switch self {
        case .sqlite(let path):
            return try await SQLiteStore.open(path: path, logger: logger, options: options)
        case .postgres(let url):
            return try await PostgresStore.open(url: url, logger: logger, options: options)
        }
    }
}
