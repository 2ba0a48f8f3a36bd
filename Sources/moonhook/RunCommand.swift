import ArgumentParser
import Foundation
import Logging
import LuaRuntime
import Moonhook

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one handler once against an event file.",
        discussion: """
            Loads HANDLER in the same sandbox, with the same host APIs and limits, as the server, \
            and calls it with an event whose body is the JSON in --event. Prints the handler's log \
            lines and the outcome. Exits 0 when the handler returns normally, 1 with the error \
            (path:line: message) when it fails or hits a limit.

            Example:
              moonhook run handlers/induced/browser_ready.lua --event fixtures/induced/browser_ready.json
            """
    )

    @Argument(help: "The handler file, e.g. handlers/<source>/<event-type>.lua.")
    var handler: String

    @Option(help: "JSON file holding the webhook body.")
    var event: String

    @Option(help: "Event type (default: the handler's file name).")
    var type: String?

    @Option(help: "Source name (default: the handler's folder name).")
    var source: String?

    @Option(help: "Handlers folder that error paths are relative to.")
    var handlers: String = "handlers"

    @Option(help: "Wall-clock limit for the invocation, in milliseconds.")
    var timeout: Int64 = 10_000

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = .debug
            return handler
        }
        var limits = LuaLimits()
        limits.wallClock = .milliseconds(timeout)
        let trial = HandlerTrial(
            handlerFile: URL(fileURLWithPath: handler),
            eventFile: URL(fileURLWithPath: event),
            type: type,
            source: source,
            handlersFolder: URL(fileURLWithPath: handlers),
            limits: limits
        )
        let report: HandlerTrial.Report
        do {
            report = try await trial.run(logger: Logger(label: "moonhook"))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let milliseconds = Double(report.duration.components.attoseconds) / 1e15 + Double(report.duration.components.seconds) * 1000
        // Instructions are counted by the hook in steps of its interval, so small counts read as 0.
        let timing = String(format: "%.2f ms", milliseconds) + (report.instructions > 0 ? ", about \(report.instructions) instructions" : "")
        switch report.outcome {
        case .success(let values):
            print("ok: \(report.handlerPath) (\(timing))")
            for value in values where value != .nil { print("returned: \(LogAPI.render(value))") }
        case .failure(let error):
            let excerpt = SourceExcerpt.lines(for: error.message, handlersFolder: URL(fileURLWithPath: handlers))
            FileHandle.standardError.write(Data((["error: \(error.message)"] + excerpt).map { $0 + "\n" }.joined().utf8))
            print("failed: \(report.handlerPath) (\(timing))")
            throw ExitCode(1)
        }
    }
}
