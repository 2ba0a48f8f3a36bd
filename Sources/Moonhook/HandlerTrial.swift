import Foundation
import Logging
import LuaRuntime
import MoonhookStore
import WebhookVerification

/// One handler run once against one event file, in the same sandbox and with the same host APIs
/// the server uses: what `moonhook run` does.
public struct HandlerTrial: Sendable {
    /// The handler's file.
    public var handlerFile: URL
    /// The file holding the webhook body: JSON, or form fields in a `.form` file.
    public var eventFile: URL
    /// Event type; defaults to the handler's file name.
    public var type: String?
    /// Source name; defaults to the handler's folder name.
    public var source: String?
    /// The handlers folder, which error paths are relative to.
    public var handlersFolder: URL
    public var limits: LuaLimits
    /// What `http` may reach.
    public var outbound: OutboundPolicy
    /// Where `handler_secrets` come from.
    public var environment: [String: String] = ProcessInfo.processInfo.environment

    public init(
        handlerFile: URL, eventFile: URL, type: String? = nil, source: String? = nil, handlersFolder: URL,
        limits: LuaLimits = LuaLimits(), outbound: OutboundPolicy = OutboundPolicy()
    ) {
        self.outbound = outbound
        self.handlerFile = handlerFile
        self.eventFile = eventFile
        self.type = type
        self.source = source
        self.handlersFolder = handlersFolder
        self.limits = limits
    }

    /// What came of the run.
    public struct Report: Sendable {
        public var handlerPath: String
        public var outcome: Result<[LuaValue], LuaError>
        public var logLines: [HandlerContext.LogLine]
        public var instructions: Int64
        public var duration: Duration
    }

    /// The handler's path relative to the handlers folder, or as given when it lies elsewhere.
    var handlerPath: String {
        let file = handlerFile.standardizedFileURL.path
        let root = handlersFolder.standardizedFileURL.path
        let prefix = root.hasSuffix("/") ? root : root + "/"
        if file.hasPrefix(prefix) { return String(file.dropFirst(prefix.count)) }
        return handlerFile.deletingLastPathComponent().lastPathComponent + "/" + handlerFile.lastPathComponent
    }

    /// Loads the handler, invokes it once and reports. Fails only for files that cannot be read.
    public func run(logger: Logger) async throws -> Report {
        let path = handlerPath
        let source = try readFile(handlerFile, what: "handler")
        let body = try readFile(eventFile, what: "event")
        let secrets: [String: String]
        let formJSON: String?
        do {
            let sourceFile = handlerFile.deletingLastPathComponent().appending(path: "source.yaml").path
            secrets = try SourceConfiguration.handlerSecrets(path: sourceFile, environment: environment)
            formJSON = try SourceConfiguration.formJSON(path: sourceFile, environment: environment)
        } catch {
            throw TrialError(message: error.description)
        }
        let client = HandlerRuntime.makeHTTPClient()
        let services = HostServices(logger: logger, limits: limits, store: MemoryKeyValueStore(), httpClient: client, outbound: outbound)
        let worker: LuaWorker
        do {
            worker = try HandlerRuntime.makeWorker(services, name: "moonhook-run")
        } catch {
            try await client.shutdown()
            throw error
        }
        let report = await invoke(worker: worker, path: path, source: source, body: body, formJSON: formJSON, secrets: secrets, logger: logger)
        worker.shutdown()
        try await client.shutdown()
        return report
    }

    private func invoke(
        worker: LuaWorker, path: String, source: [UInt8], body: [UInt8], formJSON: String?, secrets: [String: String], logger: Logger
    ) async -> Report {
        let eventSource = self.source ?? handlerFile.deletingLastPathComponent().lastPathComponent
        let eventType = self.type ?? handlerFile.deletingPathExtension().lastPathComponent
        let clock = ContinuousClock()
        let started = clock.now
        let handler: LuaHandler
        do {
            handler = try await worker.load(path: path, source: source, extras: ["secrets": .table(array: [], fields: secrets.mapValues { .string($0) })])
        } catch {
            return Report(handlerPath: path, outcome: .failure(error), logLines: [], instructions: 0, duration: clock.now - started)
        }
        let event = HandlerEvent(
            id: Digest.hex(Digest.hash(.sha256, body)),
            source: eventSource,
            type: eventType,
            headers: ["content-type": FixtureContentType.of(eventFile.path)],
            raw: body,
            formJSON: formJSON
        )
        var eventLogger = logger
        eventLogger[metadataKey: "source"] = "\(eventSource)"
        eventLogger[metadataKey: "event.type"] = "\(eventType)"
        eventLogger[metadataKey: "delivery.id"] = "\(event.id)"
        let context = HandlerContext(source: eventSource, logger: eventLogger, redactions: Array(secrets.values))
        let outcome = await worker.invoke(handler, arguments: [event.luaValue], info: LuaInvocationInfo(handlerPath: path, context: context))
        return Report(handlerPath: path, outcome: outcome.result, logLines: context.logLines, instructions: outcome.instructions, duration: clock.now - started)
    }

    private func readFile(_ url: URL, what: String) throws -> [UInt8] {
        do {
            return Array(try Data(contentsOf: url))
        } catch {
            throw TrialError(message: "cannot read \(what) file \(url.path)")
        }
    }
}

/// A file `moonhook run` was given cannot be used.
public struct TrialError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
