/// Reads a `text/event-stream` as it arrives, in chunks cut anywhere: each blank line ends an
/// event (its `event:` name, `message` when none, and its `data:` lines joined); comment lines
/// (`: heartbeat`) and `retry:` are skipped.
public struct ServerSentEventParser: Sendable {
    public struct Event: Sendable, Equatable {
        public var name: String
        public var data: String

        public init(name: String, data: String) {
            self.name = name
            self.data = data
        }
    }

    private var line: [UInt8] = []
    private var name: String?
    private var data: [String] = []

    public init() {}

    /// The events `chunk` completes.
    public mutating func feed(_ chunk: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for byte in chunk {
            guard byte == UInt8(ascii: "\n") else {
                line.append(byte)
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let text = String(decoding: line, as: UTF8.self)
            line.removeAll(keepingCapacity: true)
            if text.isEmpty {
                if !data.isEmpty { events.append(Event(name: name ?? "message", data: data.joined(separator: "\n"))) }
                name = nil
                data = []
            } else if text.hasPrefix("event:") {
                name = Self.value(text.dropFirst(6))
            } else if text.hasPrefix("data:") {
                data.append(Self.value(text.dropFirst(5)))
            }
        }
        return events
    }

    private static func value(_ text: Substring) -> String {
        String(text.first == " " ? text.dropFirst() : text)
    }
}
