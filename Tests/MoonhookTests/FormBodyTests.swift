import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Moonhook
import MoonhookTestSupport
import NIOCore
import Testing
import WebhookVerification

/// Form-posting senders end to end, through the production `buildApplication` on a real socket,
/// signed by the senders' own libraries: Slack slash commands and button clicks, GitHub's form
/// content type, Twilio's messaging and voice webhooks, and multipart bodies.
@Suite("Form bodies end to end")
struct FormBodyTests {
    static let form = "application/x-www-form-urlencoded"

    /// `text` percent-encoded as a form value.
    static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, _ headers: HTTPFields, _ body: [UInt8]) async throws -> (HTTPResponse.Status, String) {
        let response = try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: body))
        return (response.status, String(buffer: response.body))
    }

    @Test func slackSlashCommandsAndButtonClicksRunTheirHandlers() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("slack/source.yaml", "scheme: slack\nsecret: slack-signing-secret\n")
        try handlers.write("slack/deploy.lua", "return function(e) log.info('deploy', {text = e.body.text, user = e.body.user_id, command = e.body.command}) end")
        try handlers.write("slack/block_actions.lua", "return function(e) log.info('clicked', {action = e.body.actions[1].action_id, user = e.body.user.id}) end")
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            let command = Array(
                ("token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&channel_id=C2147483705&user_id=U2147483697&command=%2Fdeploy&text=prod+now"
                    + "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678&trigger_id=13345224609.738474920.8088930838d88f008e0").utf8)
            let signed = try ReferenceSigner.sign("slack", secret: "slack-signing-secret", body: command)
            let (status, answer) = try await Self.post(client, "/hooks/slack", Server.headers(signed, contentType: Self.form), command)
            #expect(status == .accepted)
            #expect(answer.contains(#""type":"deploy""#) && answer.contains(#""handlers":1"#))
            #expect(await Server.eventually { records.all.contains { $0.message == "deploy" } })
            let line = try #require(records.all.first { $0.message == "deploy" })
            #expect(line.metadata["text"] == "prod now" && line.metadata["user"] == "U2147483697" && line.metadata["command"] == "/deploy")

            let payload = #"{"type":"block_actions","user":{"id":"U1","name":"ana"},"actions":[{"action_id":"approve","value":"yes & more"}]}"#
            let click = Array("payload=\(Self.encoded(payload))".utf8)
            let clickSigned = try ReferenceSigner.sign("slack", secret: "slack-signing-secret", body: click)
            let (clickStatus, clickAnswer) = try await Self.post(client, "/hooks/slack", Server.headers(clickSigned, contentType: Self.form), click)
            #expect(clickStatus == .accepted)
            #expect(clickAnswer.contains(#""type":"block_actions""#))
            #expect(await Server.eventually { records.all.contains { $0.message == "clicked" && $0.metadata["action"] == "approve" && $0.metadata["user"] == "U1" } })

            // Verified on the raw bytes: an unsigned change to one field is refused before anything is read.
            let changed = Array(String(decoding: command, as: UTF8.self).replacingOccurrences(of: "prod", with: "test").utf8)
            #expect(try await Self.post(client, "/hooks/slack", Server.headers(signed, contentType: Self.form), changed) == (.unauthorized, "signature does not match\n"))
            let neither = Array("user_id=U1&text=hi".utf8)
            #expect(
                try await Self.post(client, "/hooks/slack", Server.headers(try ReferenceSigner.sign("slack", secret: "slack-signing-secret", body: neither), contentType: Self.form), neither)
                    == (.badRequest, "no event type at /type or form field command\n"))
            let broken = Array("payload=%7Bnot+json".utf8)
            let (brokenStatus, brokenReason) = try await Self.post(
                client, "/hooks/slack", Server.headers(try ReferenceSigner.sign("slack", secret: "slack-signing-secret", body: broken), contentType: Self.form), broken)
            #expect(brokenStatus == .badRequest && brokenReason.hasPrefix("form field payload is not JSON"))
        }
    }

    @Test func githubFormDeliveriesRunByTheirEventHeader() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("github/source.yaml", "scheme: github\nsecret: gh-secret\n")
        try handlers.write("github/push.lua", "return function(e) log.info('pushed', {ref = e.body.ref, id = e.id, commits = #e.body.commits}) end")
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            let event = #"{"ref":"refs/heads/main","commits":[{"id":"a1"},{"id":"b2"}],"repository":{"full_name":"o/r"}}"#
            let body = Array("payload=\(Self.encoded(event))".utf8)
            let signed = try ReferenceSigner.sign("github", secret: "gh-secret", body: body, id: "72d3162e-cc78-11e3-81ab-4c9367dc0958", event: "push")
            let (status, answer) = try await Self.post(client, "/hooks/github", Server.headers(signed, contentType: Self.form), body)
            #expect(status == .accepted)
            #expect(answer.contains(#""id":"72d3162e-cc78-11e3-81ab-4c9367dc0958""#) && answer.contains(#""type":"push""#))
            #expect(await Server.eventually { records.all.contains { $0.message == "pushed" } })
            let line = try #require(records.all.first { $0.message == "pushed" })
            #expect(line.metadata["ref"] == "refs/heads/main" && line.metadata["commits"] == "2" && line.metadata["id"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        }
    }

    @Test func twilioMessagesAndCallsRunTheirHandlers() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        let publicURL = "https://hooks.example.com/hooks/twilio"
        try handlers.write("twilio/source.yaml", "scheme: twilio\nsecrets: [\"new-auth-token\", \"old-auth-token\"]\npublic_url: \(publicURL)\n")
        try handlers.write("twilio/message.received.lua", "return function(e) log.info('sms', {body = e.body.Body, from = e.body.From, id = e.id}) end")
        try handlers.write("twilio/call.ringing.lua", "return function(e) log.info('call', {from = e.body.From, sid = e.body.CallSid}) end")
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            let sms = Array("MessageSid=SM11&SmsSid=SM11&AccountSid=AC1&From=%2B15551234567&To=%2B15557654321&Body=Caf%C3%A9+at+5%3F&NumMedia=0&SmsStatus=received&ApiVersion=2010-04-01&ToState=".utf8)
            let signed = try ReferenceSigner.sign("twilio", secret: "new-auth-token", body: sms, id: "idem-sms-1", url: publicURL + "?tenant=acme")
            let (status, answer) = try await Self.post(client, "/hooks/twilio?tenant=acme", Server.headers(signed, contentType: Self.form), sms)
            #expect(status == .accepted)
            #expect(answer.contains(#""type":"message.received""#) && answer.contains(#""id":"idem-sms-1""#))
            #expect(await Server.eventually { records.all.contains { $0.message == "sms" } })
            let line = try #require(records.all.first { $0.message == "sms" })
            #expect(line.metadata["body"] == "Caf\u{e9} at 5?" && line.metadata["from"] == "+15551234567")
            // Twilio retries with the same idempotency token: a duplicate.
            #expect(try await Self.post(client, "/hooks/twilio?tenant=acme", Server.headers(signed, contentType: Self.form), sms).0 == .ok)

            // A voice call, signed with the previous token and without an idempotency token: the id is the body's hash.
            let call = Array("CallSid=CA42&AccountSid=AC1&From=%2B15551234567&To=%2B15557654321&CallStatus=ringing&Direction=inbound&ApiVersion=2010-04-01".utf8)
            let callSigned = try ReferenceSigner.sign("twilio", secret: "old-auth-token", body: call, url: publicURL)
            let (callStatus, callAnswer) = try await Self.post(client, "/hooks/twilio", Server.headers(callSigned, contentType: Self.form), call)
            #expect(callStatus == .accepted)
            #expect(callAnswer.contains(#""type":"call.ringing""#) && callAnswer.contains(Digest.sha256Hex(call)))
            #expect(await Server.eventually { records.all.contains { $0.message == "call" && $0.metadata["sid"] == "CA42" } })

            // Signed for the URL the receiver sees behind a proxy, not the public one: refused.
            let port = try #require(client.port)
            let inner = try ReferenceSigner.sign("twilio", secret: "new-auth-token", body: call, url: "http://127.0.0.1:\(port)/hooks/twilio")
            #expect(try await Self.post(client, "/hooks/twilio", Server.headers(inner, contentType: Self.form), call) == (.unauthorized, "signature does not match\n"))
            // The query string is signed too.
            #expect(try await Self.post(client, "/hooks/twilio?tenant=other", Server.headers(signed, contentType: Self.form), sms) == (.unauthorized, "signature does not match\n"))
        }
    }

    /// A multipart body as `requests`/urllib3 write it: `type:` and `id:` name form fields, a
    /// repeated field is an array, a file is `{filename, content_type, data}` with its exact bytes.
    @Test func multipartFieldsAndFilesReachTheHandler() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("uploads/source.yaml", "scheme: hmac\nsecret: k\nheader: X-Signature\nprefix: \"sha1=\"\nalgorithm: sha1\ntype: form:kind\nid: form:ref\n")
        try handlers.write(
            "uploads/report.lua",
            """
            return function(e)
              local f = e.body.upload
              log.info('upload', {tags = table.concat(e.body.tag, ','), name = f.filename, type = f.content_type, size = #f.data,
                                  digest = hex.encode(crypto.sha256(f.data)), kind = e.body.kind})
            end
            """)
        let encoded = try ReferenceMultipart.encode(
            fields: #"[("kind", "report"), ("ref", "r-2026-1"), ("tag", "q4"), ("tag", "final"), ("upload", ("q4.bin", data, "application/octet-stream"))]"#,
            data: #"bytes(range(256)) * 4 + b"\r\n--not-the-boundary--\r\n""#)
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            let signed = try ReferenceSigner.sign("hmac-sha1-hex", secret: "k", body: encoded.body)
            let (status, answer) = try await Self.post(client, "/hooks/uploads", Server.headers(signed, contentType: encoded.contentType), encoded.body)
            #expect(status == .accepted)
            #expect(answer.contains(#""type":"report""#) && answer.contains(#""id":"r-2026-1""#))
            #expect(await Server.eventually { records.all.contains { $0.message == "upload" } })
            let line = try #require(records.all.first { $0.message == "upload" })
            #expect(line.metadata["tags"] == "q4,final" && line.metadata["name"] == "q4.bin" && line.metadata["type"] == "application/octet-stream")
            #expect(line.metadata["size"] == "\(encoded.data.count)" && line.metadata["digest"] == Digest.sha256Hex(encoded.data))

            let cut = Array(encoded.body.dropLast(30))
            let (cutStatus, cutReason) = try await Self.post(client, "/hooks/uploads", Server.headers(try ReferenceSigner.sign("hmac-sha1-hex", secret: "k", body: cut), contentType: encoded.contentType), cut)
            #expect((cutStatus, cutReason) == (.badRequest, "form body cannot be read: multipart body has no closing boundary\n"))
        }
    }

    @Test func contentTypesThatCannotBeReadAre415() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("bu2/source.yaml", "scheme: browser-use-v2\nsecret: s\n")
        try handlers.write("plain/source.yaml", "scheme: none\ntype: form:event\n")
        try handlers.write("plain/ping.lua", "return function(e) log.info('ping', {n = e.body.n}) end")
        let records = LogRecords()
        let app = try await buildApplication(configuration: Server.configuration(handlers), environment: [:], logger: records.logger())
        try await app.test(.live) { client in
            let body = Array("event=ping&n=1".utf8)
            let toJSONOnly = try await Self.post(client, "/hooks/bu2", Server.headers([], contentType: Self.form), body)
            #expect(toJSONOnly == (.unsupportedMediaType, "scheme browser-use-v2 signs JSON: content type must be application/json, got application/x-www-form-urlencoded\n"))
            let plainText = try await Self.post(client, "/hooks/plain", Server.headers([], contentType: "text/plain; charset=utf-8"), body)
            #expect(plainText == (.unsupportedMediaType, "content type must be application/json, application/x-www-form-urlencoded or multipart/form-data, got text/plain\n"))
            let accepted = try await Self.post(client, "/hooks/plain", Server.headers([], contentType: Self.form), body)
            #expect(accepted.0 == .accepted)
            #expect(await Server.eventually { records.all.contains { $0.message == "ping" && $0.metadata["n"] == "1" } })
        }
    }
}
