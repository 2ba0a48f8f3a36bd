/// Why a request was refused, in one line that is safe to send back to the sender: it never
/// contains a secret or the expected signature.
public struct VerificationError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: String, Sendable {
        /// A header the scheme needs is absent.
        case missingHeader
        /// A header is present but cannot be parsed.
        case malformedHeader
        /// No secret produces the signature received.
        case signatureMismatch
        /// The signed timestamp lies outside the tolerance (a replay, or a wrong clock).
        case timestampOutOfTolerance
        /// The body could not be read the way the scheme signs it.
        case undecodableBody
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }

    static func missing(_ header: String) -> VerificationError {
        VerificationError(.missingHeader, "missing \(header) header")
    }

    static func malformed(_ header: String) -> VerificationError {
        VerificationError(.malformedHeader, "malformed \(header) header")
    }

    static let mismatch = VerificationError(.signatureMismatch, "signature does not match")
}

/// A verifier configuration that cannot work, found when the configuration is loaded.
public struct VerifierConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
