/// One field of a form body, as sent: a name, its value's bytes and, for a multipart file, the
/// file's name and content type.
public struct FormField: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]
    /// The `filename` of a multipart part; a part with one is a file.
    public var filename: String?
    /// The `Content-Type` of a multipart part.
    public var contentType: String?

    public init(name: String, value: [UInt8], filename: String? = nil, contentType: String? = nil) {
        self.name = name
        self.value = value
        self.filename = filename
        self.contentType = contentType
    }

    public var isFile: Bool { filename != nil }
}

/// Why a form body could not be read; the message is one line, fit to send back to the sender.
public struct FormError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Caps that keep reading a hostile form linear and small, whatever the body limit is.
public enum FormLimits {
    /// Fields (or multipart parts) in one body, at most.
    public static let maxFields = 1000
    /// Bytes of one multipart part's header block, at most.
    public static let maxPartHeaderBytes = 8192
}
