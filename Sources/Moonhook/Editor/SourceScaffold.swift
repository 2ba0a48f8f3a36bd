import Foundation
import WebhookVerification

/// What `moonhook new` writes: a source folder with a commented `source.yaml` for its scheme, and
/// for each event a handler, a test and a fixture the test sends; beside the sources, the
/// definition file and a `.luarc.json` for editors. Nothing that exists is overwritten.
public struct SourceScaffold: Sendable {
    public var source: String
    public var events: [String]
    public var scheme: VerificationScheme

    /// A scaffold that cannot be written as asked.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public init(source: String, events: [String], scheme: VerificationScheme) throws(Failure) {
        guard !source.isEmpty, !source.hasPrefix("."), source.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw Failure("a source name is letters, digits, '-', '_' and '.' (it is the URL path /hooks/<source>), got '\(source)'")
        }
        for event in events {
            guard !event.isEmpty, !event.contains("/"), !event.hasPrefix(".") else { throw Failure("'\(event)' cannot be an event type's file name") }
            guard !event.hasSuffix("_test") else { throw Failure("'\(event)': an event type ending in _test cannot have a handler file (*_test.lua are tests)") }
        }
        self.source = source
        self.events = events.isEmpty ? ["_default"] : events
        self.scheme = scheme
    }

    /// The environment variable holding the signing secret.
    var secretVariable: String {
        source.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() + "_WEBHOOK_SECRET"
    }

    /// Files to write, relative to the handlers folder, in order.
    public var files: [(path: String, text: String)] {
        var files = [(path: "\(source)/source.yaml", text: sourceYAML)]
        for event in events {
            files.append(("\(source)/\(event).lua", handler(event)))
            files.append(("\(source)/\(event)\(HandlerTestRunner.suffix)", test(event)))
            files.append(("\(source)/fixtures/\(fixtureName(event))", fixture(event)))
        }
        return files + [(HandlerTypes.fileName, HandlerTypes.definitions()), (".luarc.json", HandlerTypes.luarc)]
    }

    /// Writes the files that do not exist yet under `handlersFolder` (the definition file is
    /// always written anew); returns the paths written.
    public func write(to handlersFolder: URL) throws -> [String] {
        var written: [String] = []
        for (path, text) in files {
            let url = handlersFolder.appending(path: path)
            if FileManager.default.fileExists(atPath: url.path), path != HandlerTypes.fileName { continue }
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
            written.append(path)
        }
        return written
    }

    private var sourceYAML: String {
        var lines = [
            "# \(source): webhooks checked with the \(scheme.rawValue) scheme (docs/sources.md lists every setting).",
            "# They arrive at POST /hooks/\(source).",
            "scheme: \(scheme.rawValue)",
        ]
        if scheme != .none {
            lines += [
                "# The signing secret, from the environment: never write it here. Two entries while rotating.",
                "secrets:",
                "  - ${\(secretVariable)}",
            ]
        }
        switch scheme {
        case .hmac:
            lines += [
                "# The header holding the signature, and how it is made.",
                "header: X-Signature",
                "# prefix: \"sha256=\"",
                "# algorithm: sha256     # sha1, sha256 or sha512",
                "# encoding: hex         # or base64",
            ]
        case .token: lines += ["# Where the shared token is sent: header:NAME, bearer or basic.", "token: header:X-Webhook-Token"]
        case .twilio: lines += ["# The URL Twilio posts to, as Twilio sees it: it is part of what Twilio signs.", "public_url: https://hooks.example.com/hooks/\(source)"]
        case .none: lines += ["# Nothing is verified: anyone who knows the URL can send. For trusted networks and trials only."]
        default: break
        }
        lines += [
            "",
            "# The event type, which names the handler file (<type>.lua): by default the scheme's own",
            "# (\(SourceConfiguration.defaultType(scheme).map { "\($0)" }.joined(separator: ", then "))). A JSON pointer (/data/event), header:NAME or form:NAME says otherwise.",
            "# type: /type",
            "",
            "# Environment variables the handlers read as secrets.NAME.",
            "# handler_secrets:",
            "#   - CHAT_WEBHOOK_URL",
            "",
            "# A failed handler runs again \(RetryPolicy().retries) times, first after \(RetryPolicy().delay.components.seconds)s, then later and later.",
            "# retry:",
            "#   retries: \(RetryPolicy().retries)",
            "#   delay: \(RetryPolicy().delay.components.seconds)s",
            "",
        ]
        return lines.joined(separator: "\n")
    }

    private func handler(_ event: String) -> String {
        let what = event == "_default" ? "every event that has no handler of its own" : "every verified \(event) event"
        return """
            -- \(source): \(what). moonhook runs it after the webhook is stored, and runs it again
            -- with backoff when it fails. The API (kv, http, log, json, time, crypto, secrets) is in
            -- docs/lua-api.md, and in moonhook.d.lua for your editor.
            return {
              handle = function(event)
                log.info("\(event) received", { id = event.id })
                return { ok = true }
              end,
            }

            """
    }

    private func test(_ event: String) -> String {
        // Twilio names no event: its type comes from the status fields the fixture holds.
        let type = scheme == .twilio ? "" : "\n    type = \"\(event == "_default" ? "example" : event)\","
        return """
            -- Tests for \(event).lua: moonhook test handlers/\(source)
            -- Each case is signed as the sender would sign it and runs the server's way; see docs/handlers.md.
            return {
              {
                name = "\(event) is received",
                event = "fixtures/\(fixtureName(event))",\(type)
                expect = {
                  result = { ok = true },
                  logs = { { level = "info", message = "received" } },
                },
              },
            }

            """
    }

    private func fixtureName(_ event: String) -> String {
        scheme == .twilio ? "\(event).form" : "\(event).json"
    }

    /// An example body: replace it with one the sender really sent (`moonhook fixture ID`).
    private func fixture(_ event: String) -> String {
        guard scheme == .twilio else {
            return """
                {
                  "id": "evt_0001",
                  "type": "\(event == "_default" ? "example" : event)",
                  "created_at": "2026-01-01T00:00:00Z",
                  "data": {}
                }

                """
        }
        let parts = event.split(separator: ".", maxSplits: 1).map(String.init)
        let status = parts.count == 2 ? ["message": "SmsStatus", "call": "CallStatus", "recording": "RecordingStatus"][parts[0]] : nil
        let type = status.map { "\($0)=\(parts[1])" } ?? "EventType=\(event)"
        return "AccountSid=AC0001&MessageSid=SM0001&From=%2B15550100&To=%2B15550111&Body=Hello&\(type)"
    }
}
