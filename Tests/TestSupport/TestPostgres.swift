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
        public init() {}

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

    /// Runs `body` with a client connected to the cluster's `database` (its `postgres` database by default).
    public static func admin(host: String, port: Int, database: String = "postgres", _ body: @Sendable (PostgresClient, Logger) async throws -> Void) async throws {
        let logger = Logger(label: "test-postgres")
        let client = PostgresClient(
            configuration: PostgresClient.Configuration(host: host, port: port, username: "moonhook", password: nil, database: database, tls: .disable))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client, logger)
        }
    }

    /// The cluster's folder (its `port` file, its `data` folder), for tests that stop and start it.
    public static var directory: String? { ProcessInfo.processInfo.environment["MOONHOOK_TEST_POSTGRES_DIR"] }
}

/// A PostgreSQL cluster of a test's own (scripts/test-postgres.sh), for tests that stop and start
/// the database under a running server: the shared cluster must stay up for the others.
public struct TestPostgresCluster: Sendable {
    public let directory: String
    /// The URL of its `postgres` database.
    public let url: String

    public static func start() throws -> TestPostgresCluster {
        let directory = FileManager.default.temporaryDirectory.appending(path: "moonhook-pg-\(UUID().uuidString)").path
        let url = try script("start", directory).trimmingCharacters(in: .whitespacesAndNewlines)
        return TestPostgresCluster(directory: directory, url: url)
    }

    /// Stops the server (fast shutdown), keeping its data and port.
    public func pause() throws { _ = try Self.script("pause", directory) }
    /// Starts it again on the same port.
    public func resume() throws { _ = try Self.script("resume", directory) }
    /// Stops it and removes its folder.
    public func stop() { _ = try? Self.script("stop", directory) }

    /// Runs the script with its output in files, not pipes: the server it starts would inherit a
    /// pipe and hold it open, and reading to its end would never finish.
    @discardableResult
    static func script(_ command: String, _ directory: String) throws -> String {
        let files = FileManager.default.temporaryDirectory.appending(path: "moonhook-pg-script-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: files) }
        let outPath = files.appending(path: "out").path
        let errPath = files.appending(path: "err").path
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [ReferenceSigner.root.appending(path: "scripts/test-postgres.sh").path, command, directory]
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try? out.close()
        try? err.close()
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0 else {
            let errors = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            throw ReferenceSigner.Failure(description: "test-postgres.sh \(command) failed: \(errors)")
        }
        return output
    }
}
