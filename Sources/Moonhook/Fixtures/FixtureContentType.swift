import Foundation

/// The content type of a body kept in a file (`moonhook run --event`, `sign`, `send`): a `.form`
/// file holds URL-encoded form fields, as Slack and Twilio post them; anything else is JSON.
public enum FixtureContentType {
    public static func of(_ path: String) -> String {
        URL(fileURLWithPath: path).pathExtension == "form" ? "application/x-www-form-urlencoded" : "application/json"
    }
}
