import Logging
import LuaRuntime
import Moonhook
import MoonhookStore

/// Runs handler code with moonhook's host APIs, as the dispatcher would.
struct HandlerHarness {
    let worker: LuaWorker
    let records: LogRecords

    init(services: (Logger) -> HostServices = { TestServices.make($0) }, records: LogRecords = LogRecords()) throws {
        self.records = records
        worker = try HandlerRuntime.makeWorker(services(records.logger()))
    }

    /// Loads `body` as `return function(event) <body> end` for `source` and invokes it once.
    func run(_ body: String, source: String = "src", secrets: [String: String] = [:], event: LuaValue = .table(array: [], fields: [:])) async throws -> LuaOutcome {
        let handler = try await worker.load(
            path: "\(source)/h.lua", source: Array("return function(event)\n\(body)\nend".utf8),
            extras: ["secrets": .table(array: [], fields: secrets.mapValues { .string($0) })])
        let context = HandlerContext(source: source, logger: records.logger(), redactions: Array(secrets.values))
        let outcome = await worker.invoke(handler, arguments: [event], info: LuaInvocationInfo(handlerPath: handler.path, context: context))
        await worker.unload(handler)
        return outcome
    }

    func shutdown() { worker.shutdown() }
}

/// Opens the SQLite store at `path` the way the server does, as the engine-neutral `Store`.
func openStore(_ path: String, logger: Logger) async throws -> any Store {
    try await StoreLocation("sqlite:" + path).open(logger: logger)
}
