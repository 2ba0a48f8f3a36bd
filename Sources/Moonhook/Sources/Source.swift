import LuaRuntime
import WebhookVerification

/// A handler file loaded into every worker.
public struct LoadedHandler: Sendable {
    /// Path relative to the handlers folder, e.g. `induced/browser_ready.lua`.
    public let path: String
    /// The file name without `.lua`: the event type it handles (or `_default`).
    public let name: String
    public let options: LuaHandlerOptions
    /// `serial`: where the key of its one-at-a-time, in-order runs is (nil: no order).
    let serialKey: SourceConfiguration.FieldSource?
    /// `max_rate`: the least time between two starts, across every instance (nil: no limit).
    let startInterval: Duration?
    /// The compiled handler in every worker; released from them once no copy of this value is left.
    let version: HandlerVersion
    /// The handler in each worker, in the pool's order.
    var instances: [LuaHandler] { version.instances }

    /// Whether the handler runs for events of `type`: its own file name, or one of its `on` patterns.
    func handles(_ type: String) -> Bool {
        name == type || options.on.contains { Glob.matches($0, type) }
    }
}

/// A handler as loaded into every worker. When the last reference goes (its source was reloaded
/// and every delivery that resolved it has run), it is handed back to the pool for unloading:
/// in-flight work finishes on the version it started with, and old versions never pile up.
final class HandlerVersion: Sendable {
    let instances: [LuaHandler]
    private let pool: WorkerPool

    init(instances: [LuaHandler], pool: WorkerPool) {
        self.instances = instances
        self.pool = pool
    }

    deinit { pool.retire(instances) }
}

/// One sender: a folder of handlers with its `source.yaml`, ready to serve.
public struct Source: Sendable {
    public let name: String
    public let configuration: SourceConfiguration
    public let verifier: Verifier
    public let handlers: [LoadedHandler]
    /// The JSON pointers of the event type and delivery id, and their tokens, split once here
    /// rather than on every request.
    let pointers: [String]
    let pointerTokens: [[String]]
    /// The handler secrets' values, which handlers' log lines must not show.
    let redactions: [String]
    /// Every secret of the source (signing secrets and handler secrets), which kept refusals must not show.
    let secrets: [String]

    init(name: String, configuration: SourceConfiguration, verifier: Verifier, handlers: [LoadedHandler]) {
        self.name = name
        self.configuration = configuration
        self.verifier = verifier
        self.handlers = handlers
        pointers = Array(Set((configuration.type + configuration.id + handlers.compactMap(\.serialKey)).compactMap(\.pointer))).sorted()
        pointerTokens = pointers.map(JSONScanner.tokens(of:))
        redactions = Array(configuration.handlerSecrets.values)
        secrets = configuration.verifier.secrets + redactions
    }

    /// The handler loaded from `path` (relative to the handlers folder), if it still is.
    func handler(at path: String) -> LoadedHandler? {
        handlers.first { $0.path == path }
    }

    /// The handlers that run for an event of `type`: every handler named after the type or matching
    /// it with `on`; `_default.lua` only when no other matches. Dead-letter alerts
    /// (`moonhook.dead`) go to `_dead.lua` only, which runs for nothing else: a failing `*`
    /// handler must not feed on its own alerts.
    public func handlers(for type: String) -> [LoadedHandler] {
        if type == DeadLetterAlert.type { return handlers.filter { $0.name == DeadLetterAlert.handlerName } }
        let matching = handlers.filter { $0.name != "_default" && $0.name != DeadLetterAlert.handlerName && $0.handles(type) }
        if !matching.isEmpty { return matching }
        return handlers.filter { $0.name == "_default" }
    }
}

/// `*` matches any run of characters (dots included); everything else matches itself.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        matches(Array(pattern.utf8)[...], Array(text.utf8)[...])
    }

    private static func matches(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            let rest = pattern.dropFirst()
            if rest.isEmpty { return true }
            var suffix = text
            while true {
                if matches(rest, suffix) { return true }
                guard !suffix.isEmpty else { return false }
                suffix = suffix.dropFirst()
            }
        }
        guard let head = text.first, head == first else { return false }
        return matches(pattern.dropFirst(), text.dropFirst())
    }
}
