import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL cluster that `make test` starts (scripts/test-postgres.sh) and names in
/// `MOONHOOK_TEST_POSTGRES_URL`. Each test takes a database of its own, so tests run in parallel.
public enum TestPostgres {
    /// The cluster's URL; nil outside `make test`.
    public static var url: String? {
        guard let url = ProcessInfo.processInfo.environment["MOONHOOK_TEST_POSTGRES_URL"], !url.isEmpty else { return nil }
        return url
    }

    /// Whether tests must run against PostgreSQL: always under CI, where a missing cluster is a failure,
    /// never a silent skip.
    public static var required: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Whether the PostgreSQL cases run: the cluster is there, or it must be.
    public static var enabled: Bool { url != nil || required }

    public struct Missing: Error, CustomStringConvertible {
        public var description: String {
            "MOONHOOK_TEST_POSTGRES_URL is not set: PostgreSQL tests run through `make test`, which starts a cluster"
        }
    }

    /// A new, empty database on the test cluster; its `postgres://` URL.
    public static func database(_ query: String = "sslmode=disable") async throws -> String {
        guard let url = url, let components = URLComponents(string: url), let host = components.host, let port = components.port else { throw Missing() }
        let name = "moonhook_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await admin(host: host, port: port) { client, logger in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        return "postgres://moonhook@\(host):\(port)/\(name)?\(query)"
    }

    /// Drops a database `database` made, with whatever is still connected to it.
    public static func drop(_ databaseURL: String) async {
        guard let url = url, let components = URLComponents(string: url), let host = components.host, let port = components.port,
            let name = URLComponents(string: databaseURL)?.path.dropFirst(), name.hasPrefix("moonhook_test_")
        else { return }
        try? await admin(host: host, port: port) { client, logger in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }

    /// Runs `body` with a client connected to the cluster's `postgres` database.
    public static func admin(host: String, port: Int, _ body: @Sendable (PostgresClient, Logger) async throws -> Void) async throws {
        let logger = Logger(label: "test-postgres")
        let client = PostgresClient(
            configuration: PostgresClient.Configuration(host: host, port: port, username: "moonhook", password: nil, database: "postgres", tls: .disable))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client, logger)
        }
    }

    /// The cluster's folder (its `port` file, its `data` folder), for tests that stop and start it.
    public static var directory: String? { ProcessInfo.processInfo.environment["MOONHOOK_TEST_POSTGRES_DIR"] }
}
