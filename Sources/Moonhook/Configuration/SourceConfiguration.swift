import Foundation
import WebhookVerification

/// A source's `source.yaml`: how to verify its webhooks and where their event type and delivery id
/// are. Only `scheme` (and its secrets) is required; the rest defaults per scheme.
///
/// ```yaml
/// scheme: github
/// secrets: ["${GITHUB_WEBHOOK_SECRET}", "${GITHUB_WEBHOOK_SECRET_OLD}"]
/// ```
public struct SourceConfiguration: Sendable {
    public var verifier: VerifierConfiguration
    /// Where the event type is, tried in order.
    public var type: [FieldSource]
    /// Where the delivery id is, tried in order; the body's SHA-256 when none has it.
    public var id: [FieldSource]
    /// `form_json`: the form field whose JSON, when a form body has that field, is the event's body
    /// and what JSON pointers read (Slack's interactivity and GitHub's form deliveries put the event
    /// in `payload`, the default of those schemes).
    public var formJSON: String?
    /// Secrets the handlers read as `secrets.NAME`: each name in `handler_secrets` with the value of
    /// the environment variable of that name.
    public var handlerSecrets: [String: String] = [:]
    /// `respond: sync`: the handler runs before the answer, and its return value is the answer.
    public var respondsSynchronously = false
    /// Invocations of this source's handlers running at once, at most (nil: only the server's limit).
    public var concurrency: Int?
    /// When failed handlers run again; a handler's `retries` and `retry_delay` override it.
    public var retry = RetryPolicy()
    /// `allow_from`: the addresses requests may come from (nil: any), checked before verification.
    public var allowFrom: [IPRange]?
    /// `rate_limit`: verified requests taken per second in this process, past which they get 429.
    public var rateLimit: RateLimit?

    /// `rate_limit: {rate: 100/s, burst: 200}`.
    public struct RateLimit: Sendable, Equatable {
        public var rate: Rate
        /// Requests taken at once after a quiet spell (default: one second's worth, at least 1).
        public var burst: Int
    }

    /// One place a value can come from.
    public enum FieldSource: Sendable, Equatable, CustomStringConvertible {
        /// A request header.
        case header(String)
        /// A JSON pointer into the body, such as `/data/eventType`.
        case pointer(String)
        /// The lower-case hex SHA-256 of the raw body.
        case bodyHash
        /// A field of a form body, such as Slack's `command`. As an event type, its leading `/` is dropped.
        case form(String)
        /// Twilio's messaging and voice webhooks: `message.<MessageStatus or SmsStatus>`,
        /// `call.<CallStatus>` or `recording.<RecordingStatus>`, such as `message.received`.
        case twilioStatus

        init(_ text: String, field: String, path: String) throws(ConfigurationError) {
            if text.lowercased().hasPrefix("header:") {
                let name = text.dropFirst("header:".count).trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { throw ConfigurationError(path: path, "'\(field)': header name missing after 'header:'") }
                self = .header(name)
            } else if text.hasPrefix("/") {
                self = .pointer(text)
            } else if text == "sha256" {
                self = .bodyHash
            } else if text.lowercased().hasPrefix("form:") {
                let name = String(text.dropFirst("form:".count))
                guard !name.isEmpty else { throw ConfigurationError(path: path, "'\(field)': field name missing after 'form:'") }
                self = .form(name)
            } else {
                throw ConfigurationError(path: path, "'\(field)' must be a JSON pointer (/data/eventType), header:NAME, form:NAME or sha256")
            }
        }

        /// The JSON pointer, for the pointer case.
        public var pointer: String? {
            if case .pointer(let pointer) = self { return pointer }
            return nil
        }

        public var description: String {
            switch self {
            case .header(let name): "header \(name)"
            case .pointer(let pointer): pointer
            case .bodyHash: "the body's SHA-256"
            case .form(let name): "form field \(name)"
            case .twilioStatus: "MessageStatus, SmsStatus, CallStatus or RecordingStatus"
            }
        }
    }

    struct File: Decodable {
        var scheme: String?
        var secrets: [String]?
        var secret: String?
        var tolerance: Int?
        var type: String?
        var id: String?
        var header: String?
        var prefix: String?
        var algorithm: String?
        var encoding: String?
        var token: String?
        var signed: String?
        var public_url: String?
        var form_json: String?
        var handler_secrets: [String]?
        var respond: String?
        var concurrency: Int?
        var retry: Retry?
        var allow_from: [String]?
        var rate_limit: RateLimitFile?

        struct RateLimitFile: Decodable {
            var rate: String?
            var burst: Int?
        }

        struct Retry: Decodable {
            var retries: Int?
            var delay: String?
            var max_delay: String?
        }
    }

    /// Reads `source.yaml` at `path`. Without `handlerSecrets`, the `handler_secrets` are not looked
    /// up (signing a request needs only the verification secrets).
    public static func load(path: String, environment: [String: String], handlerSecrets: Bool = true) throws(ConfigurationError) -> SourceConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(path: path, "cannot read the file")
        }
        let file = try YAMLFile.decode(File.self, from: String(decoding: data, as: UTF8.self), path: path, environment: environment)
        var configuration = try SourceConfiguration(file, path: path)
        for name in handlerSecrets ? file.handler_secrets ?? [] : [] {
            guard let value = environment[name] else {
                throw ConfigurationError(path: path, "handler secret \(name): environment variable \(name) is not set")
            }
            configuration.handlerSecrets[name] = value
        }
        return configuration
    }

    /// The values of the `handler_secrets` a `source.yaml` names, without checking the rest of the
    /// file (so `moonhook run` works without the source's verification secrets).
    public static func handlerSecrets(path: String, environment: [String: String]) throws(ConfigurationError) -> [String: String] {
        guard let file = try unexpanded(path: path, environment: environment) else { return [:] }
        var secrets: [String: String] = [:]
        for name in file.handler_secrets ?? [] {
            guard let value = environment[name] else {
                throw ConfigurationError(path: path, "handler secret \(name): environment variable \(name) is not set")
            }
            secrets[name] = value
        }
        return secrets
    }

    /// The `form_json` of a `source.yaml` (its own, or its scheme's default), without checking the
    /// rest of the file, for `moonhook run`.
    public static func formJSON(path: String, environment: [String: String]) throws(ConfigurationError) -> String? {
        guard let file = try unexpanded(path: path, environment: environment) else { return nil }
        return file.form_json ?? file.scheme.flatMap(VerificationScheme.init(rawValue:)).flatMap(defaultFormJSON)
    }

    /// The file at `path` with its `${VARIABLES}` left as they are; nil when there is none.
    /// Every environment variable a `source.yaml` reads: its `${NAME}` references and its
    /// `handler_secrets`. `moonhook test` gives each a value of its own, so that a handler test
    /// needs none of the real secrets.
    public static func variables(path: String) -> (references: [String], handlerSecrets: [String]) {
        guard let data = FileManager.default.contents(atPath: path) else { return ([], []) }
        let references = EnvironmentReference.names(in: String(decoding: data, as: UTF8.self))
        return (references, ((try? unexpanded(path: path, environment: [:])) ?? nil)?.handler_secrets ?? [])
    }

    private static func unexpanded(path: String, environment: [String: String]) throws(ConfigurationError) -> File? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try YAMLFile.decode(File.self, from: String(decoding: data, as: UTF8.self), path: path, environment: environment, expand: false)
    }

    init(_ file: File, path: String) throws(ConfigurationError) {
        guard let schemeName = file.scheme else {
            throw ConfigurationError(path: path, "missing 'scheme' (one of \(VerificationScheme.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let scheme = VerificationScheme(rawValue: schemeName) else {
            throw ConfigurationError(path: path, "unknown scheme '\(schemeName)' (one of \(VerificationScheme.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var verifier = VerifierConfiguration(scheme: scheme)
        verifier.secrets = (file.secrets ?? []) + (file.secret.map { [$0] } ?? [])
        if verifier.secrets.contains(where: \.isEmpty) { throw ConfigurationError(path: path, "a secret is empty") }
        verifier.toleranceSeconds = file.tolerance
        verifier.header = file.header
        verifier.prefix = file.prefix
        if let name = file.algorithm {
            guard let algorithm = DigestAlgorithm(rawValue: name) else { throw ConfigurationError(path: path, "'algorithm' must be sha1, sha256 or sha512") }
            verifier.algorithm = algorithm
        }
        if let name = file.encoding {
            guard let encoding = SignatureEncoding(rawValue: name) else { throw ConfigurationError(path: path, "'encoding' must be hex or base64") }
            verifier.encoding = encoding
        }
        if let token = file.token {
            switch token.lowercased() {
            case "bearer": verifier.tokenLocation = .bearer
            case "basic": verifier.tokenLocation = .basic
            default:
                guard token.lowercased().hasPrefix("header:"), case .header(let name) = try FieldSource(token, field: "token", path: path) else {
                    throw ConfigurationError(path: path, "'token' must be bearer, basic or header:NAME")
                }
                verifier.tokenLocation = .header(name)
            }
        }
        if let signed = file.signed {
            guard let part = SignedPart(rawValue: signed) else { throw ConfigurationError(path: path, "'signed' must be body or payload") }
            verifier.signedPart = part
        }
        verifier.publicURL = file.public_url
        do {
            _ = try Verifier(verifier)
        } catch {
            throw ConfigurationError(path: path, error.message)
        }
        self.verifier = verifier
        switch file.respond {
        case nil, "async": respondsSynchronously = false
        case "sync": respondsSynchronously = true
        case let other?: throw ConfigurationError(path: path, "'respond' must be async or sync, got '\(other)'")
        }
        if let count = file.concurrency {
            guard count > 0 else { throw ConfigurationError(path: path, "'concurrency' must be a whole number of at least 1") }
            concurrency = count
        }
        if let retry = file.retry {
            if let retries = retry.retries {
                guard retries >= 0 else { throw ConfigurationError(path: path, "'retry.retries' must be 0 or more") }
                self.retry.retries = retries
            }
            if let delay = retry.delay { self.retry.delay = try DurationText.parse(delay, field: "retry.delay", path: path) }
            if let delay = retry.max_delay { self.retry.maxDelay = try DurationText.parse(delay, field: "retry.max_delay", path: path) }
        }
        if let entries = file.allow_from {
            allowFrom = try entries.map { (entry) throws(ConfigurationError) in
                guard let range = IPRange(entry) else { throw ConfigurationError(path: path, "allow_from: '\(entry)' is not an address or a range such as 192.30.252.0/22") }
                return range
            }
        }
        if let limit = file.rate_limit {
            guard let text = limit.rate else { throw ConfigurationError(path: path, "rate_limit needs a rate, such as rate: 100/s") }
            let rate = try Rate.parse(text, field: "rate_limit.rate", path: path)
            let burst = limit.burst ?? max(1, Int(rate.perSecond.rounded(.up)))
            guard burst >= 1 else { throw ConfigurationError(path: path, "'rate_limit.burst' must be 1 or more") }
            rateLimit = RateLimit(rate: rate, burst: burst)
        }
        type = try file.type.map { (text) throws(ConfigurationError) in [try FieldSource(text, field: "type", path: path)] } ?? Self.defaultType(scheme)
        id = try file.id.map { (text) throws(ConfigurationError) in [try FieldSource(text, field: "id", path: path)] } ?? Self.defaultID(scheme)
        if let name = file.form_json {
            guard !name.isEmpty else { throw ConfigurationError(path: path, "'form_json' must name a form field, such as payload") }
            guard scheme.acceptsForms else { throw ConfigurationError(path: path, "'form_json': scheme '\(scheme.rawValue)' takes JSON bodies only") }
            formJSON = name
        } else {
            formJSON = Self.defaultFormJSON(scheme)
        }
    }

    /// Slack's interactivity and GitHub's form content type post the event as JSON in `payload`.
    static func defaultFormJSON(_ scheme: VerificationScheme) -> String? {
        switch scheme {
        case .slack, .github: "payload"
        default: nil
        }
    }

    static func defaultType(_ scheme: VerificationScheme) -> [FieldSource] {
        switch scheme {
        case .github: [.header("X-GitHub-Event")]
        case .shopify: [.header("X-Shopify-Topic")]
        // Events API and interactivity (`payload`) carry a `type`; a slash command names its command.
        case .slack: [.pointer("/type"), .form("command")]
        // Conversations and other products' webhooks name the event in `EventType`.
        case .twilio: [.twilioStatus, .form("EventType")]
        default: [.pointer("/type")]
        }
    }

    static func defaultID(_ scheme: VerificationScheme) -> [FieldSource] {
        switch scheme {
        case .github: [.header("X-GitHub-Delivery"), .bodyHash]
        case .standardWebhooks: [.header("webhook-id"), .header("svix-id"), .bodyHash]
        case .stripe: [.pointer("/id"), .bodyHash]
        case .shopify: [.header("X-Shopify-Webhook-Id"), .bodyHash]
        case .twilio: [.header("I-Twilio-Idempotency-Token"), .bodyHash]
        default: [.bodyHash]
        }
    }
}
