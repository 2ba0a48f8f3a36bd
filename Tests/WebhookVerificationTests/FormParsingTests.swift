import Foundation
import MoonhookTestSupport
import Testing
import WebhookVerification

/// Form bodies read as the senders' own stacks read them: URL-encoded fields as Python's
/// `parse_qsl` (which Twilio's and Slack's examples use), multipart bodies as written by urllib3's
/// encoder (what `requests` sends); and hostile multipart bodies refused quickly with a reason.
@Suite("Form bodies")
struct FormParsingTests {
    /// Pairs as Python's `urllib.parse.parse_qsl(keep_blank_values=True)` reads `body`.
    static func pythonFields(_ body: String) throws -> [[String]] {
        let script = "import json, sys, urllib.parse; print(json.dumps(urllib.parse.parse_qsl(sys.stdin.read(), keep_blank_values=True)))"
        let output = try ReferenceSigner.python(["-c", script], input: Array(body.utf8))
        return try JSONDecoder().decode([[String]].self, from: output)
    }

    @Test(arguments: [
        "command=%2Fdeploy&text=prod+now&user_id=U1&response_url=https%3A%2F%2Fhooks.slack.com%2Fx",
        "a=1&a=2&b=&c&&d==e&=f",
        "plus=a+b&escaped=%2B&bad=%zz&cut=%4&tail=%",
        "utf8=caf%C3%A9&raw=caf\u{e9}&emoji=%F0%9F%98%80",
        "",
    ])
    func urlEncodedFieldsReadAsPythonReadsThem(_ body: String) throws {
        let fields = try URLEncodedForm.parse(Array(body.utf8))
        let ours = fields.map { [$0.name, String(decoding: $0.value, as: UTF8.self)] }
        #expect(ours == (try Self.pythonFields(body)))
    }

    @Test func urlEncodedFieldCountIsCapped() throws {
        let body = Array(repeating: "a=1", count: FormLimits.maxFields + 1).joined(separator: "&")
        #expect(throws: FormError("form has more than \(FormLimits.maxFields) fields")) { try URLEncodedForm.parse(Array(body.utf8)) }
        #expect(try URLEncodedForm.parse(Array(body.dropLast(4).utf8)).count == FormLimits.maxFields)
    }

    /// A multipart body from urllib3's encoder: text fields, a repeated name, and a binary file
    /// whose bytes contain line breaks, dashes and the boundary's prefix.
    @Test func multipartBodiesWrittenByUrllib3() throws {
        let encoded = try ReferenceMultipart.encode(
            fields: #"[("name", "caf\u00e9"), ("tag", "a"), ("tag", "b"), ("empty", ""), ("upload", ("report.bin", data, "application/octet-stream"))]"#,
            data: #"bytes(range(256)) + b"\r\n--not-the-boundary\r\n--""#)
        let format = try #require(BodyFormat(contentType: encoded.contentType))
        let fields = try format.fields(of: encoded.body)
        #expect(fields.map(\.name) == ["name", "tag", "tag", "empty", "upload"])
        #expect(fields[0].value == Array("caf\u{e9}".utf8))
        #expect(fields[1].value == Array("a".utf8) && fields[2].value == Array("b".utf8))
        #expect(fields[3].value.isEmpty && !fields[3].isFile)
        #expect(fields[4] == FormField(name: "upload", value: encoded.data, filename: "report.bin", contentType: "application/octet-stream"))
    }

    @Test func contentTypesMapToFormats() {
        #expect(BodyFormat(contentType: nil) == .json)
        #expect(BodyFormat(contentType: "application/json; charset=utf-8") == .json)
        #expect(BodyFormat(contentType: "application/vnd.api+json") == .json)
        #expect(BodyFormat(contentType: "Application/X-WWW-Form-Urlencoded; charset=UTF-8") == .urlEncodedForm)
        #expect(BodyFormat(contentType: #"multipart/form-data; boundary="a b;c""#) == .multipartForm(boundary: "a b;c"))
        // Hostile or sloppy parameters: an unterminated quote, empty and nameless parameters.
        #expect(BodyFormat(contentType: #"multipart/form-data; boundary="abc"#) == .multipartForm(boundary: "abc"))
        #expect(BodyFormat(contentType: "multipart/form-data;;=x; boundary ; boundary=b=c") == .multipartForm(boundary: "b=c"))
        #expect(BodyFormat(contentType: "multipart/form-data; charset=utf-8") == .multipartForm(boundary: nil))
        #expect(BodyFormat(contentType: "text/plain") == nil)
        #expect(BodyFormat(contentType: "multipart/mixed; boundary=x") == nil)
    }

    @Test(arguments: [
        ("no boundary line at all", "x", "multipart body has no boundary line"),
        ("never closed", "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue", "multipart body has no closing boundary"),
        ("headers never end", "--B\r\nContent-Disposition: form-data; name=\"a\"" + String(repeating: "x", count: 9000), "multipart part headers are unterminated or longer than 8192 bytes"),
        ("no disposition", "--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--", "multipart part has no form-data Content-Disposition"),
        ("no name", "--B\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nv\r\n--B--", "multipart part has no name"),
        ("junk after the boundary", "--Bjunk\r\n\r\nv\r\n--B--", "multipart boundary line is malformed"),
    ])
    func malformedMultipartBodiesAreRefusedWithAReason(_ name: String, _ body: String, _ reason: String) {
        #expect(throws: FormError(reason)) { try MultipartForm.parse(Array(body.utf8), boundary: "B") }
    }

    @Test func multipartLimits() throws {
        #expect(throws: FormError("multipart boundary must be 1 to 70 characters")) { try MultipartForm.parse([], boundary: String(repeating: "b", count: 71)) }
        #expect(throws: FormError("multipart/form-data content type has no boundary")) { try BodyFormat.multipartForm(boundary: nil).fields(of: []) }
        let part = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n"
        let many = String(repeating: part, count: FormLimits.maxFields + 1) + "--B--"
        #expect(throws: FormError("multipart body has more than \(FormLimits.maxFields) parts")) { try MultipartForm.parse(Array(many.utf8), boundary: "B") }
        #expect(try MultipartForm.parse(Array((String(repeating: part, count: 3) + "--B--\r\n").utf8), boundary: "B").count == 3)
    }

    /// Cut, spliced and corrupted copies of a valid multipart body (a fixed seed): each is read or
    /// refused with a reason, never a trap, and a URL-encoded read of the same bytes never traps either.
    @Test func corruptedBodiesAreReadOrRefusedNeverTrap() throws {
        let valid = Array(
            ("preamble\r\n--B \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n"
                + "--B\r\ncontent-disposition: form-data; name=\"f\"; filename=\"x\\\".txt\"\r\nContent-Type: text/plain\r\n\r\n%41+\r\n--B--\r\n").utf8)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(max(bound, 1)))
        }
        let alphabet = Array("\r\n-B=\";:%+&a ".utf8)
        var read = 0
        for _ in 0..<5000 {
            var body = valid
            for _ in 0..<(1 + next(4)) {
                switch next(3) {
                case 0: body = Array(body.prefix(next(body.count + 1)))
                case 1: if !body.isEmpty { body[next(body.count)] = alphabet[next(alphabet.count)] }
                default: body.insert(contentsOf: body[next(body.count + 1)...].prefix(next(20)), at: next(body.count + 1))
                }
            }
            if (try? MultipartForm.parse(body, boundary: "B")) != nil { read += 1 }
            _ = try? URLEncodedForm.parse(body)
        }
        #expect(read > 0 && read < 5000)
        #expect(try MultipartForm.parse(valid, boundary: "B").map(\.filename) == [nil, "x\".txt"])
    }

    /// A megabyte of near-misses of a long boundary (every line break starts a delimiter that
    /// fails at its last byte) is read in well under a second: the search is linear.
    @Test func nearMissesOfTheBoundaryAreReadInLinearTime() throws {
        let boundary = String(repeating: "x", count: 70)
        let nearMiss = "\r\n--" + String(repeating: "x", count: 69) + "y"
        let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + String(repeating: nearMiss, count: 1 << 20 / nearMiss.utf8.count) + "\r\n--\(boundary)--"
        let clock = ContinuousClock()
        let started = clock.now
        let fields = try MultipartForm.parse(Array(body.utf8), boundary: boundary)
        #expect(clock.now - started < .seconds(1))
        #expect(fields.count == 1 && fields[0].value.count > 1_000_000)
    }
}
