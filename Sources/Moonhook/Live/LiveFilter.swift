import Logging

/// What one reader of the live stream wants: a source, a handler, a lowest log level. A delivery
/// passes a handler filter when it was routed to that handler, and a level filter always.
public struct LiveFilter: Sendable, Equatable {
    public var source: String?
    public var handler: String?
    public var level: Logger.Level?

    public init(source: String? = nil, handler: String? = nil, level: Logger.Level? = nil) {
        self.source = source
        self.handler = handler
        self.level = level
    }

    public func admits(_ event: LiveEvent) -> Bool {
        if let source, event.source != source { return false }
        if let handler {
            if let path = event.handler {
                guard path == handler else { return false }
            } else if !event.handlers.contains(handler) {
                return false
            }
        }
        if let level, event.kind != .delivery, let eventLevel = event.level, eventLevel < level { return false }
        return true
    }
}
