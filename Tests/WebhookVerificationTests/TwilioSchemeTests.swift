import Foundation
import MoonhookTestSupport
import Testing
import WebhookVerification

/// The `twilio` scheme against Twilio's own `RequestValidator` (the `twilio` package on PyPI).
@Suite("The twilio scheme against Twilio's RequestValidator")
struct TwilioSchemeTests {
    static let token = "12345678901234567890123456789012"
    static let publicURL = "https://hooks.example.com/hooks/twilio"
    /// An incoming SMS as Twilio posts it: `+` and `%2B`, an empty field, non-ASCII, a repeated name.
    static let message = Array(
        ("ToCountry=US&ToState=&SmsMessageSid=SM11&NumMedia=0&ToCity=&FromZip=&SmsSid=SM11&FromState=CA&SmsStatus=received"
            + "&Body=Caf%C3%A9+at+5%3F+%F0%9F%98%80&FromCountry=US&To=%2B15557654321&MessageSid=SM11&AccountSid=AC1&From=%2B15551234567"
            + "&ApiVersion=2010-04-01&Tag=b&Tag=a&Tag=b").utf8)

    static func verifier(secrets: [String] = [token], url: String = publicURL) throws -> Verifier {
        try Verifier(VerifierConfiguration(scheme: .twilio, secrets: secrets, publicURL: url))
    }

    static func request(_ headers: [(name: String, value: String)], _ body: [UInt8], query: String = "", contentType: String = "application/x-www-form-urlencoded") -> WebhookRequest {
        WebhookRequest(headers: headers + [("Content-Type", contentType)], body: body, query: query)
    }

    @Test func acceptsWhatTwilioSignsWithTheQueryStringAppended() throws {
        let query = "source=sms&b=%2Fx"
        let headers = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, url: Self.publicURL + "?" + query)
        #expect(throws: Never.self) { try Self.verifier().verify(Self.request(headers, Self.message, query: query), now: Date()) }
        // Without the query string that was signed, the URL differs.
        #expect(throws: VerificationError(.signatureMismatch, "signature does not match")) {
            try Self.verifier().verify(Self.request(headers, Self.message), now: Date())
        }
    }

    @Test func acceptsTheURLWithAndWithoutTheDefaultPort() throws {
        let withPort = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, url: "https://hooks.example.com:443/hooks/twilio")
        #expect(throws: Never.self) { try Self.verifier().verify(Self.request(withPort, Self.message), now: Date()) }
        let withoutPort = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, url: Self.publicURL)
        #expect(throws: Never.self) { try Self.verifier(url: "https://hooks.example.com:443/hooks/twilio").verify(Self.request(withoutPort, Self.message), now: Date()) }
        let otherPort = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, url: "https://hooks.example.com:8443/hooks/twilio")
        #expect(throws: VerificationError.self) { try Self.verifier().verify(Self.request(otherPort, Self.message), now: Date()) }
    }

    @Test func refusesAChangedFieldAnotherURLAndAnotherToken() throws {
        let headers = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, url: Self.publicURL)
        let changed = Array(String(decoding: Self.message, as: UTF8.self).replacingOccurrences(of: "To=%2B1555", with: "To=%2B1556").utf8)
        #expect(throws: VerificationError(.signatureMismatch, "signature does not match")) { try Self.verifier().verify(Self.request(headers, changed), now: Date()) }
        // A proxy's inner URL is not what Twilio signed.
        #expect(throws: VerificationError.self) { try Self.verifier(url: "http://10.0.0.5:8080/hooks/twilio").verify(Self.request(headers, Self.message), now: Date()) }
        #expect(throws: VerificationError.self) { try Self.verifier(secrets: ["another token"]).verify(Self.request(headers, Self.message), now: Date()) }
        #expect(throws: VerificationError(.missingHeader, "missing X-Twilio-Signature header")) { try Self.verifier().verify(Self.request([], Self.message), now: Date()) }
    }

    @Test func rotatedTokensAreAccepted() throws {
        let old = try ReferenceSigner.sign("twilio", secret: "the old token", body: Self.message, url: Self.publicURL)
        #expect(throws: Never.self) { try Self.verifier(secrets: [Self.token, "the old token"]).verify(Self.request(old, Self.message), now: Date()) }
    }

    /// Field order in the body does not matter: Twilio signs the fields sorted by name.
    @Test func fieldOrderDoesNotMatter() throws {
        let headers = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, url: Self.publicURL)
        let pieces = String(decoding: Self.message, as: UTF8.self).split(separator: "&")
        let reordered = Array(pieces.reversed().joined(separator: "&").utf8)
        #expect(throws: Never.self) { try Self.verifier().verify(Self.request(headers, reordered), now: Date()) }
    }

    @Test func signsExactlyAsTwilioDoes() throws {
        let reference = try ReferenceSigner.sign("twilio", secret: Self.token, body: Self.message, id: "idem-1", url: Self.publicURL)
        let ours = try Self.verifier().sign(body: Self.message, now: Date(), id: "idem-1")
        #expect(Dictionary(uniqueKeysWithValues: ours.map { ($0.name, $0.value) }) == Dictionary(uniqueKeysWithValues: reference.map { ($0.name, $0.value) }))
    }

    /// A JSON body is signed as the URL alone, which carries the body's SHA-256.
    @Test func jsonBodiesAreCheckedThroughBodySHA256() throws {
        let body = Array(#"{"event":"x","n":1}"#.utf8)
        let query = "bodySHA256=" + Digest.hex(Digest.hash(.sha256, body))
        let headers = try ReferenceSigner.sign("twilio", secret: Self.token, body: body, url: Self.publicURL + "?" + query, json: true)
        #expect(throws: Never.self) { try Self.verifier().verify(Self.request(headers, body, query: query, contentType: "application/json"), now: Date()) }
        let tampered = Array(#"{"event":"y","n":1}"#.utf8)
        #expect(throws: VerificationError(.signatureMismatch, "body does not match its bodySHA256")) {
            try Self.verifier().verify(Self.request(headers, tampered, query: query, contentType: "application/json"), now: Date())
        }
        #expect(throws: VerificationError.self) { try Self.verifier().verify(Self.request(headers, body, contentType: "application/json"), now: Date()) }
    }

    @Test func configurationMistakesAreCaught() {
        #expect(throws: VerifierConfigurationError.self) { try Verifier(VerifierConfiguration(scheme: .twilio, secrets: [Self.token])) }
        #expect(throws: VerifierConfigurationError("public_url must not have a query string; the request's own is appended")) {
            try Self.verifier(url: Self.publicURL + "?a=1")
        }
        #expect(throws: VerifierConfigurationError.self) { try Self.verifier(url: "hooks.example.com/hooks/twilio") }
        #expect(throws: VerifierConfigurationError.self) { try Verifier(VerifierConfiguration(scheme: .twilio, publicURL: Self.publicURL)) }
    }
}
