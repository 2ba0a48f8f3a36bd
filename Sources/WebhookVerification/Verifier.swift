import Foundation

/// Checks that a request comes from the sender, on the raw body and in constant time, and signs
/// bodies the way the sender would (for `moonhook sign` and tests).
///
/// Built once per source when its configuration is loaded (secrets are decoded then), then shared:
/// verifying does no allocation beyond the HMAC input.
///
/// ```swift
/// let verifier = try Verifier(VerifierConfiguration(scheme: .github, secrets: ["s3cret"]))
/// try verifier.verify(WebhookRequest(headers: headers, body: body), now: Date())
/// ```
public struct Verifier: Sendable {
    public let configuration: VerifierConfiguration
    /// Secrets as HMAC keys (Standard Webhooks keys are base64 after `whsec_`).
    private let keys: [[UInt8]]
    /// The same keys made ready for the scheme's HMAC; empty for `token` and `none`.
    private let macKeys: [HMACKey]
    private let tolerance: Int?
    private let twilio: TwilioSignature?

    public init(_ configuration: VerifierConfiguration) throws(VerifierConfigurationError) {
        self.configuration = configuration
        let scheme = configuration.scheme
        if scheme != .none && configuration.secrets.isEmpty {
            throw VerifierConfigurationError("scheme '\(scheme.rawValue)' needs at least one secret")
        }
        if scheme == .none && !configuration.secrets.isEmpty {
            throw VerifierConfigurationError("scheme 'none' takes no secrets")
        }
        if let tolerance = configuration.toleranceSeconds, tolerance <= 0 {
            throw VerifierConfigurationError("tolerance must be a positive number of seconds")
        }
        if scheme == .standardWebhooks {
            keys = try configuration.secrets.map { (secret) throws(VerifierConfigurationError) -> [UInt8] in
                let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
                guard let key = Data(base64Encoded: encoded), !key.isEmpty else {
                    throw VerifierConfigurationError("a standard-webhooks secret must be base64, usually after 'whsec_'")
                }
                return Array(key)
            }
        } else {
            keys = configuration.secrets.map { Array($0.utf8) }
        }
        let macAlgorithm: DigestAlgorithm? =
            switch scheme {
            case .none, .token: nil
            case .hmac: configuration.algorithm
            case .twilio: .sha1
            default: .sha256
            }
        if let macAlgorithm {
            macKeys = try keys.map { (key) throws(VerifierConfigurationError) -> HMACKey in
                guard let ready = HMACKey(macAlgorithm, key: key) else {
                    throw VerifierConfigurationError("libcrypto cannot make an HMAC-\(macAlgorithm.rawValue.uppercased()) (is OpenSSL 3 installed whole?)")
                }
                return ready
            }
        } else {
            macKeys = []
        }
        tolerance = configuration.toleranceSeconds ?? (scheme.isTimestamped ? 300 : nil)
        if scheme == .twilio {
            guard let url = configuration.publicURL else {
                throw VerifierConfigurationError("scheme 'twilio' needs public_url: the URL Twilio calls, such as https://hooks.example.com/hooks/twilio")
            }
            twilio = try TwilioSignature(publicURL: url)
        } else {
            twilio = nil
        }
    }

    /// Throws the reason when `request` does not carry a valid signature (or token) for any secret.
    public func verify(_ request: WebhookRequest, now: Date) throws(VerificationError) {
        switch configuration.scheme {
        case .none:
            return
        case .browserUse:
            let signature = try hexHeader(request, "X-Webhook-Signature", prefix: "")
            try match(signature, over: request.body)
            if tolerance != nil, let stamp = Self.bodyTimestamp(request.body) {
                try checkTolerance(stamp, now: now)
            }
        case .browserUseV2:
            let signature = try hexHeader(request, "X-Browser-Use-Signature", prefix: "")
            guard let stamp = request.header("X-Browser-Use-Timestamp") else { throw .missing("X-Browser-Use-Timestamp") }
            let message = try browserUseMessage(timestamp: stamp, body: request.body)
            try match(signature, over: message)
            guard let seconds = Self.parseTimestamp(stamp) else { throw .malformed("X-Browser-Use-Timestamp") }
            try checkTolerance(seconds, now: now)
        case .standardWebhooks:
            let prefix = request.header("webhook-id") != nil || request.header("svix-id") == nil ? "webhook" : "svix"
            guard let id = request.header("\(prefix)-id") else { throw .missing("webhook-id") }
            guard let stamp = request.header("\(prefix)-timestamp") else { throw .missing("\(prefix)-timestamp") }
            guard let list = request.header("\(prefix)-signature") else { throw .missing("\(prefix)-signature") }
            guard let seconds = Int64(stamp) else { throw .malformed("\(prefix)-timestamp") }
            let signatures = list.split(separator: " ").compactMap { entry -> [UInt8]? in
                let parts = entry.split(separator: ",", maxSplits: 1)
                guard parts.count == 2, parts[0] == "v1", let data = Data(base64Encoded: String(parts[1])) else { return nil }
                return Array(data)
            }
            guard !signatures.isEmpty else { throw .malformed("\(prefix)-signature") }
            let message = Array("\(id).\(stamp).".utf8) + request.body
            try match(any: signatures, over: message)
            try checkTolerance(seconds, now: now)
        case .github:
            let signature = try hexHeader(request, "X-Hub-Signature-256", prefix: "sha256=")
            try match(signature, over: request.body)
        case .stripe:
            guard let header = request.header("Stripe-Signature") else { throw .missing("Stripe-Signature") }
            var stamp: Substring?
            var signatures: [[UInt8]] = []
            for item in header.split(separator: ",") {
                let pair = item.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                let key = pair[0].trimmingCharacters(in: .whitespaces)
                if key == "t" { stamp = pair[1] }
                if key == "v1", let bytes = Self.decodeHex(pair[1]) { signatures.append(bytes) }
            }
            guard let stamp, let seconds = Int64(stamp) else { throw .malformed("Stripe-Signature") }
            guard !signatures.isEmpty else { throw VerificationError(.malformedHeader, "Stripe-Signature has no v1 signature") }
            let message = Array("\(stamp).".utf8) + request.body
            try match(any: signatures, over: message)
            try checkTolerance(seconds, now: now)
        case .slack:
            let signature = try hexHeader(request, "X-Slack-Signature", prefix: "v0=")
            guard let stamp = request.header("X-Slack-Request-Timestamp") else { throw .missing("X-Slack-Request-Timestamp") }
            guard let seconds = Int64(stamp) else { throw .malformed("X-Slack-Request-Timestamp") }
            let message = Array("v0:\(stamp):".utf8) + request.body
            try match(signature, over: message)
            try checkTolerance(seconds, now: now)
        case .shopify:
            guard let header = request.header("X-Shopify-Hmac-Sha256") else { throw .missing("X-Shopify-Hmac-Sha256") }
            guard let signature = Data(base64Encoded: header) else { throw .malformed("X-Shopify-Hmac-Sha256") }
            try match(Array(signature), over: request.body)
        case .hmac:
            let name = configuration.header ?? "X-Signature"
            guard let header = request.header(name) else { throw .missing(name) }
            let prefix = configuration.prefix ?? ""
            guard header.hasPrefix(prefix) else { throw .malformed(name) }
            let text = header.dropFirst(prefix.count)
            let decoded: [UInt8]? = configuration.encoding == .hex ? Self.decodeHex(text) : Data(base64Encoded: String(text)).map(Array.init)
            guard let signature = decoded else { throw .malformed(name) }
            try match(signature, over: request.body)
        case .token:
            let presented = try presentedToken(request)
            for key in keys where Digest.constantTimeEquals(key, presented) { return }
            throw VerificationError(.signatureMismatch, "token does not match")
        case .twilio:
            guard let header = request.header("X-Twilio-Signature") else { throw .missing("X-Twilio-Signature") }
            guard let signature = Data(base64Encoded: header.trimmingCharacters(in: .whitespaces)) else { throw .malformed("X-Twilio-Signature") }
            let fields = try twilioFields(request)
            for url in twilio?.urls(query: request.query) ?? [] {
                let message = TwilioSignature.message(url: url, fields: fields)
                if (try? match(Array(signature), over: message)) != nil { return }
            }
            throw .mismatch
        }
    }

    /// The headers a sender would send with `body` at time `now` (signed with the first secret).
    /// `contentType` matters to `twilio` only, which signs the fields of a form body (its default).
    public func sign(body: [UInt8], now: Date, id: String? = nil, contentType: String? = nil) throws(VerificationError) -> [(name: String, value: String)] {
        let key = keys.first ?? []
        let seconds = Int64(now.timeIntervalSince1970)
        switch configuration.scheme {
        case .none:
            return []
        case .browserUse:
            return [("X-Webhook-Signature", Digest.hex(Digest.hmac(.sha256, key: key, data: body)))]
        case .browserUseV2:
            let stamp = String(seconds)
            let message = try browserUseMessage(timestamp: stamp, body: body)
            return [("X-Browser-Use-Signature", Digest.hex(Digest.hmac(.sha256, key: key, data: message))), ("X-Browser-Use-Timestamp", stamp)]
        case .standardWebhooks:
            let id = id ?? "msg_" + Digest.hex(Digest.hash(.sha256, body).prefix(12))
            let signature = Data(Digest.hmac(.sha256, key: key, data: Array("\(id).\(seconds).".utf8) + body)).base64EncodedString()
            return [("webhook-id", id), ("webhook-timestamp", String(seconds)), ("webhook-signature", "v1,\(signature)")]
        case .github:
            return [("X-Hub-Signature-256", "sha256=" + Digest.hex(Digest.hmac(.sha256, key: key, data: body)))]
        case .stripe:
            let signature = Digest.hex(Digest.hmac(.sha256, key: key, data: Array("\(seconds).".utf8) + body))
            return [("Stripe-Signature", "t=\(seconds),v1=\(signature)")]
        case .slack:
            let signature = Digest.hex(Digest.hmac(.sha256, key: key, data: Array("v0:\(seconds):".utf8) + body))
            return [("X-Slack-Signature", "v0=\(signature)"), ("X-Slack-Request-Timestamp", String(seconds))]
        case .shopify:
            return [("X-Shopify-Hmac-Sha256", Data(Digest.hmac(.sha256, key: key, data: body)).base64EncodedString())]
        case .hmac:
            let mac = Digest.hmac(configuration.algorithm, key: key, data: body)
            let text = configuration.encoding == .hex ? Digest.hex(mac) : Data(mac).base64EncodedString()
            return [(configuration.header ?? "X-Signature", (configuration.prefix ?? "") + text)]
        case .token:
            let secret = configuration.secrets.first ?? ""
            switch configuration.tokenLocation {
            case .header(let name): return [(name, secret)]
            case .bearer: return [("Authorization", "Bearer \(secret)")]
            case .basic: return [("Authorization", "Basic " + Data(secret.utf8).base64EncodedString())]
            }
        case .twilio:
            let request = WebhookRequest(headers: [("Content-Type", contentType ?? "application/x-www-form-urlencoded")], body: body)
            let message = TwilioSignature.message(url: twilio?.urls.first ?? "", fields: try twilioFields(request))
            var headers = [("X-Twilio-Signature", Data(Digest.hmac(.sha1, key: key, data: message)).base64EncodedString())]
            if let id { headers.append(("I-Twilio-Idempotency-Token", id)) }
            return headers
        }
    }

    // MARK: - Pieces

    private func hexHeader(_ request: WebhookRequest, _ name: String, prefix: String) throws(VerificationError) -> [UInt8] {
        guard let header = request.header(name) else { throw .missing(name) }
        // On the raw UTF-8: this runs for every request.
        var value = header.utf8[...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        guard value.starts(with: prefix.utf8), let bytes = Self.decodeHex(value.dropFirst(prefix.utf8.count)) else { throw .malformed(name) }
        return bytes
    }

    /// Passes when `signature` equals the MAC under any key. Every key is tried, match or not.
    private func match(_ signature: [UInt8], over message: [UInt8]) throws(VerificationError) {
        try match(any: [signature], over: message)
    }

    /// Throws unless one of `signatures` is the HMAC of `message` under one of the secrets, in
    /// time that does not depend on which (every key and signature is compared).
    private func match(any signatures: [[UInt8]], over message: [UInt8]) throws(VerificationError) {
        var matched = false
        for key in macKeys {
            let expected = key.mac(message)
            for signature in signatures where Digest.constantTimeEquals(expected, signature) { matched = true }
        }
        if !matched { throw .mismatch }
    }

    private func checkTolerance(_ seconds: Int64, now: Date) throws(VerificationError) {
        guard let tolerance else { return }
        let skew = Int64(now.timeIntervalSince1970) - seconds
        if skew > Int64(tolerance) {
            throw VerificationError(.timestampOutOfTolerance, "timestamp is \(skew) s old; tolerance is \(tolerance) s")
        }
        if -skew > Int64(tolerance) {
            throw VerificationError(.timestampOutOfTolerance, "timestamp is \(-skew) s in the future; tolerance is \(tolerance) s")
        }
    }

    private func browserUseMessage(timestamp: String, body: [UInt8]) throws(VerificationError) -> [UInt8] {
        let canonical: [UInt8]
        do {
            canonical = try CanonicalJSON.pythonSorted(body, member: configuration.signedPart == .payload ? "payload" : nil)
        } catch {
            throw VerificationError(.undecodableBody, "body cannot be canonicalised: \(error)")
        }
        return Array("\(timestamp).".utf8) + canonical
    }

    /// The POST fields Twilio signs: a form's fields, or none for a JSON body, whose SHA-256 Twilio
    /// puts in the URL's `bodySHA256` query parameter instead (that URL is then what is signed).
    private func twilioFields(_ request: WebhookRequest) throws(VerificationError) -> [FormField] {
        let format = BodyFormat(of: request)
        if let format, format.isForm {
            do {
                return try format.fields(of: request.body)
            } catch {
                throw VerificationError(.undecodableBody, error.message)
            }
        }
        let query = (try? URLEncodedForm.parse(request.query.utf8)) ?? []
        guard format == .json, let hash = query.first(where: { $0.name == "bodySHA256" }) else {
            throw VerificationError(.undecodableBody, "twilio signs form fields; a JSON body needs bodySHA256 in the URL")
        }
        guard Digest.constantTimeEquals(Array(Digest.hex(Digest.hash(.sha256, request.body)).utf8), hash.value) else {
            throw VerificationError(.signatureMismatch, "body does not match its bodySHA256")
        }
        return []
    }

    private func presentedToken(_ request: WebhookRequest) throws(VerificationError) -> [UInt8] {
        switch configuration.tokenLocation {
        case .header(let name):
            guard let value = request.header(name) else { throw .missing(name) }
            return Array(value.utf8)
        case .bearer:
            guard let value = request.header("Authorization") else { throw .missing("Authorization") }
            guard value.lowercased().hasPrefix("bearer ") else { throw VerificationError(.malformedHeader, "Authorization header is not a bearer token") }
            return Array(value.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        case .basic:
            guard let value = request.header("Authorization") else { throw .missing("Authorization") }
            guard value.lowercased().hasPrefix("basic "), let decoded = Data(base64Encoded: String(value.dropFirst(6)).trimmingCharacters(in: .whitespaces)) else {
                throw VerificationError(.malformedHeader, "Authorization header is not basic credentials")
            }
            return Array(decoded)
        }
    }

    /// Unix seconds from a header value: an integer, or an ISO 8601 date.
    static func parseTimestamp(_ text: String) -> Int64? {
        if let seconds = Int64(text) { return seconds }
        if let seconds = Double(text), seconds.isFinite { return Int64(seconds) }
        return parseISO8601(text)
    }

    /// Seconds from an ISO 8601 date, with or without fractions; without an offset it is read as UTC.
    static func parseISO8601(_ text: String) -> Int64? {
        let styles = [Date.ISO8601FormatStyle(), Date.ISO8601FormatStyle(includingFractionalSeconds: true)]
        for candidate in [text, text + "Z"] {
            for style in styles {
                if let date = try? style.parse(candidate) { return Int64(date.timeIntervalSince1970) }
            }
        }
        return nil
    }

    /// The body's top-level `timestamp` (ISO 8601 or seconds), when it has one.
    static func bodyTimestamp(_ body: [UInt8]) -> Int64? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        if let text = object["timestamp"] as? String { return parseTimestamp(text) }
        if let number = object["timestamp"] as? NSNumber { return number.int64Value }
        return nil
    }

    static func decodeHex(_ text: Substring) -> [UInt8]? {
        decodeHex(text.utf8[...])
    }

    static func decodeHex(_ utf8: String.UTF8View.SubSequence) -> [UInt8]? {
        decodeHex(Array(utf8))
    }

    static func decodeHex(_ utf8: [UInt8]) -> [UInt8]? {
        guard utf8.count % 2 == 0, !utf8.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
