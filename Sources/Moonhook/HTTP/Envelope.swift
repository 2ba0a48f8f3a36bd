import WebhookVerification

/// What the receiver learns from a verified request before storing it: its event type and
/// delivery id, taken where the source's configuration says.
struct Envelope {
    var type: String
    var id: String

    /// Checks `request`'s JSON body in one pass and extracts type and id.
    /// - Throws: `HTTPFailure` 415 when the content type is not JSON, 400 when the body is not JSON
    ///   or has no event type.
    static func open(_ request: WebhookRequest, source: Source) throws(HTTPFailure) -> Envelope {
        let rules = source.configuration
        if let contentType = request.header("Content-Type") {
            let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard mediaType == "application/json" || mediaType.hasSuffix("+json") else {
                throw HTTPFailure(.unsupportedMediaType, "content type must be application/json, got \(mediaType)")
            }
        }
        let pointers = source.pointers
        let scalars: [String?]
        do {
            scalars = try JSONScanner.scan(request.body, tokens: source.pointerTokens)
        } catch {
            throw HTTPFailure(.badRequest, "body is not JSON: \(error)")
        }
        var found: [String: String] = [:]
        for (pointer, scalar) in zip(pointers, scalars) { found[pointer] = scalar }
        guard let type = value(of: rules.type, request: request, pointers: found), !type.isEmpty else {
            let places = rules.type.map(\.description).joined(separator: " or ")
            throw HTTPFailure(.badRequest, "no event type at \(places)")
        }
        let id = value(of: rules.id, request: request, pointers: found) ?? Digest.hex(Digest.hash(.sha256, request.body))
        return Envelope(type: type, id: id)
    }

    private static func value(of sources: [SourceConfiguration.FieldSource], request: WebhookRequest, pointers: [String: String]) -> String? {
        for source in sources {
            switch source {
            case .header(let name):
                if let value = request.header(name), !value.isEmpty { return value }
            case .pointer(let pointer):
                if let value = pointers[pointer] { return value }
            case .bodyHash:
                return Digest.hex(Digest.hash(.sha256, request.body))
            }
        }
        return nil
    }
}
