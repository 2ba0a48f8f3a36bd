import ArgumentParser
import Foundation
import Logging
import Moonhook
import MoonhookStore

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate moonhook.yaml, every source.yaml, and compile every handler.",
        discussion: """
            Also reports unknown globals and API members (kv.incrby) in handlers and their tests, with the closest known \
            name, and warns of a moonhook.d.lua that is stale. Prints one line per problem as path:line: message and exits 1 \
            if there is any (a warning alone does not).
            """
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration: ServerConfiguration
        do {
            configuration = try options.load(environment: environment)
        } catch {
            print(error)
            throw ExitCode(1)
        }
        let logger = Logger(label: "moonhook-check") { _ in SwiftLogNoOpLogHandler() }
        let client = HandlerRuntime.makeHTTPClient()
        let services = HostServices(logger: logger, limits: configuration.limits, store: MemoryKeyValueStore(), httpClient: client, outbound: configuration.outbound)
        let pool = try WorkerPool(count: 1, services: services)
        let catalog = await SourceCatalog.load(folder: configuration.handlersFolder, pool: pool, environment: environment)
        let findings = try await HandlerFolderCheck.findings(handlersFolder: configuration.handlersFolder, worker: pool.workers[0])
        pool.shutdown()
        try await client.shutdown()
        for problem in catalog.problems.map(\.description) + findings {
            print(problem)
            for line in SourceExcerpt.lines(for: problem, handlersFolder: URL(fileURLWithPath: configuration.handlersFolder)) { print(line) }
        }
        for name in catalog.sources.keys.sorted() {
            let source = catalog.sources[name]!
            print("ok: \(name) (\(source.configuration.verifier.scheme.rawValue), \(source.handlers.count) handlers)")
        }
        for warning in HandlerFolderCheck.warnings(handlersFolder: configuration.handlersFolder) { print(warning) }
        if !catalog.problems.isEmpty || !findings.isEmpty { throw ExitCode(1) }
    }
}
