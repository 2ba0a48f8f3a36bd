/// How a webhook's body is written, from its `Content-Type`: JSON (also when no content type is
/// sent), or one of the two form encodings. Any other content type has no format, and is refused.
public enum BodyFormat: Sendable, Equatable {
    case json
    case urlEncodedForm
    /// `multipart/form-data`; the boundary is nil when the header has none (the body then cannot be read).
    case multipartForm(boundary: String?)

    /// The content types that have a format, for a refusal's reason.
    public static let acceptedContentTypes = "application/json, application/x-www-form-urlencoded or multipart/form-data"

    /// The format of a body sent with `contentType`; nil for a content type moonhook does not read.
    public init?(contentType: String?) {
        guard let contentType else {
            self = .json
            return
        }
        let header = ParameterizedHeader(contentType)
        switch header.value {
        case "application/json": self = .json
        case let type where type.hasSuffix("+json"): self = .json
        case "application/x-www-form-urlencoded": self = .urlEncodedForm
        case "multipart/form-data": self = .multipartForm(boundary: header.parameters["boundary"])
        default: return nil
        }
    }

    /// The format of `request`'s body (see `init(contentType:)`).
    public init?(of request: WebhookRequest) {
        self.init(contentType: request.header("Content-Type"))
    }

    /// The media type as a refusal names it: the content type without its parameters, lower-cased.
    public static func mediaType(of contentType: String) -> String {
        ParameterizedHeader(contentType).value
    }

    public var isForm: Bool { self != .json }

    /// The fields of a form body, in the order sent; empty for JSON.
    /// - Throws: `FormError` when the body does not follow its form encoding.
    public func fields(of body: [UInt8]) throws(FormError) -> [FormField] {
        switch self {
        case .json: return []
        case .urlEncodedForm: return try URLEncodedForm.parse(body)
        case .multipartForm(let boundary?): return try MultipartForm.parse(body, boundary: boundary)
        case .multipartForm(nil): throw FormError("multipart/form-data content type has no boundary")
        }
    }
}
