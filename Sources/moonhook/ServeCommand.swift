import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Moonhook

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Receive webhooks and run their handlers.",
        discussion: """
            Serves POST /hooks/<source> for every folder of the handlers folder, and GET /healthz. \
            Settings come from moonhook.yaml, then MOONHOOK_* environment variables, then these \
            flags (see docs/configuration.md). SIGTERM or SIGINT stops accepting, finishes the work \
            in flight and exits 0.
            """
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration = try options.load(environment: environment)
        LogSetup.bootstrap(level: configuration.logLevel)
        let logger = Logger(label: "moonhook")
        let host = configuration.host
        let file = options.config ?? (FileManager.default.fileExists(atPath: "moonhook.yaml") ? "moonhook.yaml" : nil)
        let app = try await buildApplication(configuration: configuration, environment: environment, logger: logger, configurationFile: file) { port in
            logger.notice("moonhook listening", metadata: ["address": "\(host):\(port)"])
        }
        try await app.runService()
    }
}

/// Flags shared by the commands that read the server's configuration.
struct ServerOptions: ParsableArguments {
    @Option(help: "Configuration file (default: ./moonhook.yaml when it exists).")
    var config: String?

    @Option(help: "Handlers folder (default: ./handlers).")
    var handlers: String?

    @Option(help: "Address to listen on, HOST:PORT (default: 127.0.0.1:8080).")
    var listen: String?

    @Option(help: "Storage: sqlite:PATH or postgres://... (default: sqlite:data/moonhook.sqlite).")
    var store: String?

    func load(environment: [String: String]) throws -> ServerConfiguration {
        do {
            var configuration = try ServerConfiguration.load(file: config ?? "moonhook.yaml", required: config != nil, environment: environment)
            if let handlers { configuration.handlersFolder = handlers }
            if let listen { try configuration.setListen(listen, origin: "--listen") }
            if let store { configuration.store = store }
            return configuration
        } catch {
            throw ValidationError(error.description)
        }
    }
}
