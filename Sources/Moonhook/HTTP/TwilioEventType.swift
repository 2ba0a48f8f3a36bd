/// The event type of a Twilio messaging or voice webhook, which names no event itself: what the
/// delivery is about (a message, a call, a recording) and the status it reports, so that an incoming
/// SMS runs `message.received.lua`, an incoming call `call.ringing.lua`, and a status callback
/// `message.delivered.lua` or `call.completed.lua` (`on = {"message.*"}` takes them all).
enum TwilioEventType {
    /// Status fields in the order they are tried, with the prefix each gives.
    static let statusFields: [(field: String, prefix: String)] = [
        ("MessageStatus", "message."),
        ("SmsStatus", "message."),
        ("CallStatus", "call."),
        ("RecordingStatus", "recording."),
    ]

    /// The type for a form whose fields `field` reads, or nil when it has none of the status fields.
    static func type(_ field: (String) -> String?) -> String? {
        for (name, prefix) in statusFields {
            if let status = field(name), !status.isEmpty { return prefix + status }
        }
        return nil
    }
}
