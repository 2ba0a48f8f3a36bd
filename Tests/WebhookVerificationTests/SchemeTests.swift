import Foundation
import MoonhookTestSupport
import Testing
import WebhookVerification

/// One scheme as configured here and as `scripts/sign.py` names it.
struct SchemeCase: CustomTestStringConvertible, Sendable {
    let name: String
    let reference: String
    let configuration: VerifierConfiguration
    let payloadOnly: Bool
    var testDescription: String { name }

    init(_ name: String, _ reference: String, _ configuration: VerifierConfiguration, payloadOnly: Bool = false) {
        self.name = name
        self.reference = reference
        self.configuration = configuration
        self.payloadOnly = payloadOnly
    }

    var secret: String { configuration.secrets[0] }
}

let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
let schemeCases: [SchemeCase] = [
    SchemeCase("browser-use", "browser-use", VerifierConfiguration(scheme: .browserUse, secrets: ["bu-secret"])),
    SchemeCase("browser-use-v2 (whole body, the SDK's default)", "browser-use-v2", VerifierConfiguration(scheme: .browserUseV2, secrets: ["bu-secret"])),
    SchemeCase("browser-use-v2 (payload only)", "browser-use-v2", VerifierConfiguration(scheme: .browserUseV2, secrets: ["bu-secret"], signedPart: .payload), payloadOnly: true),
    SchemeCase("standard-webhooks", "standard-webhooks", VerifierConfiguration(scheme: .standardWebhooks, secrets: [whsec])),
    SchemeCase("standard-webhooks with Svix headers", "svix", VerifierConfiguration(scheme: .standardWebhooks, secrets: [whsec])),
    SchemeCase("github", "github", VerifierConfiguration(scheme: .github, secrets: ["It's a Secret to Everybody"])),
    SchemeCase("stripe", "stripe", VerifierConfiguration(scheme: .stripe, secrets: ["whsec_stripe_test"])),
    SchemeCase("slack", "slack", VerifierConfiguration(scheme: .slack, secrets: ["8f742231b10e8888abcd99yyyzzz85a5"])),
    SchemeCase("shopify", "shopify", VerifierConfiguration(scheme: .shopify, secrets: ["shpss_secret"])),
    SchemeCase("hmac sha1 hex with prefix", "hmac-sha1-hex", VerifierConfiguration(scheme: .hmac, secrets: ["k"], header: "X-Signature", prefix: "sha1=", algorithm: .sha1, encoding: .hex)),
    SchemeCase("hmac sha512 base64", "hmac-sha512-base64", VerifierConfiguration(scheme: .hmac, secrets: ["k"], header: "X-Signature", algorithm: .sha512, encoding: .base64)),
]

/// A body with what canonicalisation must get right: key order, spacing, non-ASCII, floats, big integers.
let tricky = Array("""
    {"type": "agent.task.status_update", "timestamp": "2025-01-15T10:30:00Z",
     "payload": {"taskId": "task_abc123", "status": "finished", "z": [true, null, 1.5, 1e-7, 1e100, 12345678901234567890],
                 "note": "caf\u{e9} \u{2615} \u{1F600} \\"quoted\\" \\u00e9", "a": {"y": 0.1, "x": -0, "n": 100.0}}}
    """.utf8)

@Suite("Signature schemes against the senders' own libraries")
struct SchemeTests {
    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    static func request(_ headers: [(name: String, value: String)], _ body: [UInt8]) -> WebhookRequest {
        WebhookRequest(headers: headers + [("Content-Type", "application/json")], body: body)
    }

    @Test(arguments: schemeCases)
    func acceptsWhatTheSenderSigns(_ scheme: SchemeCase) throws {
        let headers = try ReferenceSigner.sign(scheme.reference, secret: scheme.secret, body: tricky, timestamp: Self.now, payloadOnly: scheme.payloadOnly)
        let verifier = try Verifier(scheme.configuration)
        #expect(throws: Never.self) { try verifier.verify(Self.request(headers, tricky), now: Date()) }
    }

    @Test(arguments: schemeCases)
    func refusesATamperedBody(_ scheme: SchemeCase) throws {
        let headers = try ReferenceSigner.sign(scheme.reference, secret: scheme.secret, body: tricky, timestamp: Self.now, payloadOnly: scheme.payloadOnly)
        let tampered = Array(String(decoding: tricky, as: UTF8.self).replacingOccurrences(of: "finished", with: "stopped").utf8)
        let verifier = try Verifier(scheme.configuration)
        #expect(throws: VerificationError(.signatureMismatch, "signature does not match")) {
            try verifier.verify(Self.request(headers, tampered), now: Date())
        }
    }

    @Test(arguments: schemeCases)
    func refusesAnotherSecretAndAcceptsRotatedOnes(_ scheme: SchemeCase) throws {
        let other = scheme.reference.contains("standard") || scheme.reference == "svix" ? "whsec_" + Data("another key entirely".utf8).base64EncodedString() : "another secret"
        let headers = try ReferenceSigner.sign(scheme.reference, secret: other, body: tricky, timestamp: Self.now, payloadOnly: scheme.payloadOnly)
        let verifier = try Verifier(scheme.configuration)
        #expect(throws: VerificationError.self) { try verifier.verify(Self.request(headers, tricky), now: Date()) }
        var rotated = scheme.configuration
        rotated.secrets = [scheme.secret, other]
        #expect(throws: Never.self) { try Verifier(rotated).verify(Self.request(headers, tricky), now: Date()) }
    }

    @Test(arguments: schemeCases.filter { $0.configuration.scheme.isTimestamped })
    func refusesStaleAndFutureTimestamps(_ scheme: SchemeCase) throws {
        let verifier = try Verifier(scheme.configuration)
        // Verify at the instant the timestamps were computed from: signing takes a while.
        let now = Self.now
        let instant = Date(timeIntervalSince1970: TimeInterval(now))
        for (skew, word) in [(-301, "old"), (301, "in the future")] {
            let headers = try ReferenceSigner.sign(scheme.reference, secret: scheme.secret, body: tricky, timestamp: now + Int64(skew), payloadOnly: scheme.payloadOnly)
            do {
                try verifier.verify(Self.request(headers, tricky), now: instant)
                Issue.record("a timestamp \(skew) s off was accepted")
            } catch {
                #expect(error.reason == .timestampOutOfTolerance)
                #expect(error.message.contains(word), "\(error.message)")
            }
        }
        let withinTolerance = try ReferenceSigner.sign(scheme.reference, secret: scheme.secret, body: tricky, timestamp: now - 299, payloadOnly: scheme.payloadOnly)
        #expect(throws: Never.self) { try verifier.verify(Self.request(withinTolerance, tricky), now: instant) }
    }

    @Test(arguments: schemeCases)
    func signsExactlyAsTheSenderDoes(_ scheme: SchemeCase) throws {
        let timestamp = Self.now
        let id = "msg_2Lq3yU0Z"
        let theirs = try ReferenceSigner.sign(scheme.reference, secret: scheme.secret, body: tricky, timestamp: timestamp, id: id, payloadOnly: scheme.payloadOnly)
        let ours = try Verifier(scheme.configuration).sign(body: tricky, now: Date(timeIntervalSince1970: TimeInterval(timestamp)), id: id)
        // Svix's headers are named svix-*, ours are the Standard Webhooks names; the values agree.
        let normalize: ([(name: String, value: String)]) -> [String: String] = { headers in
            Dictionary(headers.map { ($0.name.lowercased().replacingOccurrences(of: "svix-", with: "webhook-"), $0.value) }) { first, _ in first }
        }
        #expect(normalize(ours) == normalize(theirs).filter { $0.key != "x-github-delivery" })
    }

    @Test(arguments: schemeCases)
    func missingHeadersAreNamed(_ scheme: SchemeCase) throws {
        let verifier = try Verifier(scheme.configuration)
        do {
            try verifier.verify(WebhookRequest(headers: [], body: tricky), now: Date())
            Issue.record("accepted a request without headers")
        } catch {
            #expect(error.reason == .missingHeader)
            #expect(error.message.hasPrefix("missing "))
            #expect(error.message.hasSuffix(" header"))
        }
    }

    @Test func githubPublishedVector() throws {
        let verifier = try Verifier(VerifierConfiguration(scheme: .github, secrets: ["It's a Secret to Everybody"]))
        let request = WebhookRequest(headers: [("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")], body: Array("Hello, World!".utf8))
        #expect(throws: Never.self) { try verifier.verify(request, now: Date()) }
        let wrong = WebhookRequest(headers: [("x-hub-signature-256", "sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")], body: Array("Hello, World!".utf8))
        #expect(throws: VerificationError(.signatureMismatch, "signature does not match")) { try verifier.verify(wrong, now: Date()) }
    }

    @Test func malformedHeadersAreRefused() throws {
        let github = try Verifier(VerifierConfiguration(scheme: .github, secrets: ["s"]))
        for value in ["757107ea", "sha256=zz", "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "sha256="] {
            #expect(throws: VerificationError.self) { try github.verify(WebhookRequest(headers: [("X-Hub-Signature-256", value)], body: []), now: Date()) }
        }
        let stripe = try Verifier(VerifierConfiguration(scheme: .stripe, secrets: ["s"]))
        #expect(throws: VerificationError(.malformedHeader, "malformed Stripe-Signature header")) {
            try stripe.verify(WebhookRequest(headers: [("Stripe-Signature", "v1=abcd")], body: []), now: Date())
        }
    }

    @Test func tokenLocations() throws {
        let bearer = try Verifier(VerifierConfiguration(scheme: .token, secrets: ["t0ken"], tokenLocation: .bearer))
        #expect(throws: Never.self) { try bearer.verify(WebhookRequest(headers: [("Authorization", "Bearer t0ken")], body: []), now: Date()) }
        #expect(throws: VerificationError(.signatureMismatch, "token does not match")) {
            try bearer.verify(WebhookRequest(headers: [("Authorization", "Bearer t0ke")], body: []), now: Date())
        }
        let basic = try Verifier(VerifierConfiguration(scheme: .token, secrets: ["induced:pa:ss"], tokenLocation: .basic))
        let credentials = Data("induced:pa:ss".utf8).base64EncodedString()
        #expect(throws: Never.self) { try basic.verify(WebhookRequest(headers: [("Authorization", "Basic \(credentials)")], body: []), now: Date()) }
        #expect(throws: VerificationError.self) { try basic.verify(WebhookRequest(headers: [("Authorization", "Bearer induced:pa:ss")], body: []), now: Date()) }
        let header = try Verifier(VerifierConfiguration(scheme: .token, secrets: ["new", "old"], tokenLocation: .header("X-Webhook-Token")))
        #expect(throws: Never.self) { try header.verify(WebhookRequest(headers: [("x-webhook-token", "old")], body: []), now: Date()) }
        #expect(throws: VerificationError(.missingHeader, "missing X-Webhook-Token header")) { try header.verify(WebhookRequest(headers: [], body: []), now: Date()) }
    }

    @Test func configurationMistakesAreCaught() {
        #expect(throws: VerifierConfigurationError("scheme 'github' needs at least one secret")) { try Verifier(VerifierConfiguration(scheme: .github)) }
        #expect(throws: VerifierConfigurationError("scheme 'none' takes no secrets")) { try Verifier(VerifierConfiguration(scheme: .none, secrets: ["x"])) }
        #expect(throws: VerifierConfigurationError.self) { try Verifier(VerifierConfiguration(scheme: .standardWebhooks, secrets: ["whsec_!!!"])) }
        #expect(throws: Never.self) { try Verifier(VerifierConfiguration(scheme: .none)).verify(WebhookRequest(headers: [], body: []), now: Date()) }
    }

    @Test func browserUseChecksTheBodyTimestampOnlyWhenAToleranceIsSet() throws {
        let body = Array(#"{"type":"test","timestamp":"2020-01-01T00:00:00Z","payload":{"test":"ok"}}"#.utf8)
        let headers = try ReferenceSigner.sign("browser-use", secret: "s", body: body)
        #expect(throws: Never.self) { try Verifier(VerifierConfiguration(scheme: .browserUse, secrets: ["s"])).verify(Self.request(headers, body), now: Date()) }
        let strict = try Verifier(VerifierConfiguration(scheme: .browserUse, secrets: ["s"], toleranceSeconds: 300))
        #expect(throws: VerificationError.self) { try strict.verify(Self.request(headers, body), now: Date()) }
    }
}

@Suite("Canonical JSON as Python writes it")
struct CanonicalJSONTests {
    @Test func matchesPythonJsonDumps() throws {
        let script = "import json, sys; sys.stdout.write(json.dumps(json.loads(sys.stdin.read()), separators=(',', ':'), sort_keys=True))"
        let python = try ReferenceSigner.python(["-c", script], input: tricky)
        #expect(String(decoding: try CanonicalJSON.pythonSorted(tricky), as: UTF8.self) == String(decoding: python, as: UTF8.self))
    }

    @Test(arguments: [1.0, 0.1, 1e16, 1e15, 123456789012345.6, 1e-4, 1e-5, 5e-324, 1.7976931348623157e308, -2.5, 100.0, 1e22, 0.000123])
    func floatsUsePythonsRepr(_ number: Double) throws {
        let python = try ReferenceSigner.python(["-c", "import sys; sys.stdout.write(repr(float(sys.argv[1])))", "\(number)"])
        #expect(String(decoding: try CanonicalJSON.pythonSorted(Array("\(number)".utf8)), as: UTF8.self) == String(decoding: python, as: UTF8.self))
    }
}
