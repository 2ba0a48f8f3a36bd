import WebhookVerification

/// What the receiver learns from a verified request before storing it: its event type and
/// delivery id, taken where the source's configuration says.
struct Envelope {
    var type: String
    var id: String
    /// The key of each `serial` handler of the source (by path) that this request has one for.
    var orderingKeys: [String: String] = [:]

    /// The format of `request`'s body, checked before the signature: a body of a content type the
    /// receiver cannot read is refused whether it is signed or not.
    /// - Throws: `HTTPFailure` 415 for a content type other than JSON and the two form encodings,
    ///   and for a form sent to a scheme that takes JSON only (`browser-use-v2`).
    static func format(of request: WebhookRequest, scheme: VerificationScheme) throws(HTTPFailure) -> BodyFormat {
        let contentType = request.header("Content-Type")
        guard let format = BodyFormat(contentType: contentType) else {
            let mediaType = contentType.map(BodyFormat.mediaType(of:)) ?? ""
            throw HTTPFailure(.unsupportedMediaType, "content type must be \(BodyFormat.acceptedContentTypes), got \(mediaType)")
        }
        if format.isForm && !scheme.acceptsForms {
            let mediaType = contentType.map(BodyFormat.mediaType(of:)) ?? ""
            throw HTTPFailure(.unsupportedMediaType, "scheme \(scheme.rawValue) signs JSON: content type must be application/json, got \(mediaType)")
        }
        return format
    }

    /// Reads `request`'s body in one pass (a JSON body, or a form's fields and the JSON of its
    /// `form_json` field) and extracts type and id.
    /// - Throws: `HTTPFailure` 400 when the body cannot be read or has no event type.
    static func open(_ request: WebhookRequest, format: BodyFormat, source: Source) throws(HTTPFailure) -> Envelope {
        let rules = source.configuration
        var fields: [FormField] = []
        var json: [UInt8]? = request.body
        if format.isForm {
            do {
                fields = try format.fields(of: request.body)
            } catch {
                throw HTTPFailure(.badRequest, "form body cannot be read: \(error.message)")
            }
            json = rules.formJSON.flatMap { name in fields.first { $0.name == name && !$0.isFile }?.value }
        }
        var found: [String: String] = [:]
        if let json {
            let scalars: [String?]
            do {
                scalars = try JSONScanner.scan(json, tokens: source.pointerTokens)
            } catch {
                let what = format.isForm ? "form field \(rules.formJSON ?? "") is not JSON" : "body is not JSON"
                throw HTTPFailure(.badRequest, "\(what): \(error)")
            }
            for (pointer, scalar) in zip(source.pointers, scalars) { found[pointer] = scalar }
        }
        let place = Place(request: request, pointers: found, fields: fields)
        guard let type = place.value(of: rules.type, isType: true), !type.isEmpty else {
            let places = rules.type.map(\.description).joined(separator: " or ")
            throw HTTPFailure(.badRequest, "no event type at \(places)", reason: .type)
        }
        guard type != DeadLetterAlert.type else {
            throw HTTPFailure(.badRequest, "event type \(DeadLetterAlert.type) is reserved for moonhook's own dead-letter alerts", reason: .type)
        }
        let id = place.value(of: rules.id, isType: false) ?? Digest.hex(Digest.hash(.sha256, request.body))
        // Alerts' ids share the source's deduplication: a sender taking one first would silence it.
        guard !id.hasPrefix(DeadLetterAlert.idPrefix) else {
            throw HTTPFailure(.badRequest, "delivery ids starting with \(DeadLetterAlert.idPrefix) are reserved for moonhook's own dead-letter alerts", reason: .body)
        }
        var keys: [String: String] = [:]
        for handler in source.handlers {
            guard let key = handler.serialKey, let value = place.value(of: [key], isType: false), !value.isEmpty else { continue }
            keys[handler.path] = "\(handler.options.serialFailure.rawValue):\(value)"
        }
        return Envelope(type: type, id: id, orderingKeys: keys)
    }

    /// Where type and id are looked up: the headers, the JSON pointers found, the form's fields.
    private struct Place {
        let request: WebhookRequest
        let pointers: [String: String]
        let fields: [FormField]

        func value(of sources: [SourceConfiguration.FieldSource], isType: Bool) -> String? {
            for source in sources {
                switch source {
                case .header(let name):
                    if let value = request.header(name), !value.isEmpty { return value }
                case .pointer(let pointer):
                    if let value = pointers[pointer] { return value }
                case .bodyHash:
                    return Digest.hex(Digest.hash(.sha256, request.body))
                case .form(let name):
                    // A slash command's `/deploy` runs `deploy.lua`: a file name cannot hold the slash.
                    if var value = field(name), !value.isEmpty {
                        if isType, value.hasPrefix("/") { value.removeFirst() }
                        if !value.isEmpty { return value }
                    }
                case .twilioStatus:
                    if let value = TwilioEventType.type(field) { return value }
                }
            }
            return nil
        }

        /// The first non-file field named `name`, as text.
        func field(_ name: String) -> String? {
            fields.first { $0.name == name && !$0.isFile }.map { String(decoding: $0.value, as: UTF8.self) }
        }
    }
}
