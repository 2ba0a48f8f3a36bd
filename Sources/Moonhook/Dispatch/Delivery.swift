import Foundation

/// A verified, decoded webhook on its way to its handlers.
public struct Delivery: Sendable {
    public var id: String
    public var source: String
    public var type: String
    public var receivedAt: Date
    public var headers: [String: String]
    public var body: [UInt8]
    /// The handlers resolved for it when it was received.
    public var handlers: [LoadedHandler]
    /// The source's handler secrets, kept out of the handlers' log lines.
    public var redactions: [String] = []

    /// The `event` argument for attempt `attempt`.
    func event(attempt: Int) -> HandlerEvent {
        HandlerEvent(id: id, source: source, type: type, receivedAt: receivedAt, attempt: attempt, headers: headers, raw: body)
    }
}
