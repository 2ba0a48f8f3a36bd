import WebhookVerification

/// What the receiver learns from a verified request before storing it: its event type and
/// delivery id, taken where the source's configuration says.
struct Envelope {
    var type: String
    var id: String

    /// Decodes `request`'s JSON body once and extracts type and id.
    /// - Throws: `HTTPFailure` 415 when the content type is not JSON, 400 when the body is not JSON
    ///   or has no event type.
    static func open(_ request: WebhookRequest, rules: SourceConfiguration) throws(HTTPFailure) -> Envelope {
        if let contentType = request.header("Content-Type") {
            let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard mediaType == "application/json" || mediaType.hasSuffix("+json") else {
                throw HTTPFailure(.unsupportedMediaType, "content type must be application/json, got \(mediaType)")
            }
        }
        let body: JSONValue
        do {
            body = try JSONValue.parse(request.body)
        } catch {
            throw HTTPFailure(.badRequest, "body is not JSON: \(error)")
        }
        guard let type = value(of: rules.type, request: request, body: body), !type.isEmpty else {
            let places = rules.type.map(\.description).joined(separator: " or ")
            throw HTTPFailure(.badRequest, "no event type at \(places)")
        }
        let id = value(of: rules.id, request: request, body: body) ?? Digest.hex(Digest.hash(.sha256, request.body))
        return Envelope(type: type, id: id)
    }

    private static func value(of sources: [SourceConfiguration.FieldSource], request: WebhookRequest, body: JSONValue) -> String? {
        for source in sources {
            switch source {
            case .header(let name):
                if let value = request.header(name), !value.isEmpty { return value }
            case .pointer(let pointer):
                if let value = body.value(at: pointer)?.scalarText { return value }
            case .bodyHash:
                return Digest.hex(Digest.hash(.sha256, request.body))
            }
        }
        return nil
    }
}
