import Foundation
import Testing

@testable import Moonhook

/// What a kept refusal shows of a body: the first bytes, never a secret, not even its start.
@Suite("Kept refusals redact")
struct RefusalRedactionTests {
    static let secret = "s3cr3t-token-value"

    static func shown(_ body: String, limit: Int, secrets: [String] = [secret]) -> String {
        Refusal(
            time: Date(), source: "s", status: 401, reason: .signature, message: "wrong token \(secret)", remoteAddress: nil, headerNames: [],
            bodyBytes: body.utf8.count, body: Array(body.utf8), bodyLimit: limit, secrets: secrets
        ).bodyPrefix
    }

    @Test func aSecretAcrossTheCutIsNotShownInPart() {
        // The secret starts 4 bytes before the cut: all of it is replaced, none of it shown.
        let body = "abcdef" + Self.secret + "tail"
        let shown = Self.shown(body, limit: 10)
        #expect(shown == "abcdef[red", "\(shown)")
        #expect(!shown.contains("s3cr"))
    }

    @Test func everyOccurrenceAndTheLongestFirst() {
        let shown = Self.shown("x=\(Self.secret)&y=\(Self.secret)-2", limit: 100, secrets: ["s3cr3t", Self.secret + "-2", Self.secret])
        #expect(shown == "x=[redacted]&y=[redacted]", "\(shown)")
    }

    @Test func theCutFallsOnACharacterBoundary() {
        // "é" is two bytes; a cut inside it keeps the character out whole.
        #expect(Self.shown("aé", limit: 2) == "a")
        #expect(Self.shown("aé", limit: 3) == "aé")
        #expect(Self.shown("", limit: 10).isEmpty)
        #expect(Self.shown("abc", limit: 0).isEmpty)
    }

    @Test func theMessageIsRedactedToo() {
        let refusal = Refusal(
            time: Date(), source: "s", status: 500, reason: .handler, message: "handler failed: s/a.lua:1: \(Self.secret)", remoteAddress: nil,
            headerNames: [], bodyBytes: 0, body: [], bodyLimit: 256, secrets: [Self.secret])
        #expect(refusal.message == "handler failed: s/a.lua:1: [redacted]")
    }
}
