/// Everything a `Verifier` needs, as read from a source's `source.yaml`. Unset fields take the
/// scheme's defaults, so `scheme: github` with one secret is a complete configuration.
public struct VerifierConfiguration: Sendable {
    public var scheme: VerificationScheme
    /// Accepted secrets, newest first: a request signed with any of them passes (rotation).
    public var secrets: [String]
    /// How far a signed timestamp may lie from now, either way. Defaults to 300 s for timestamped
    /// schemes; for `browser-use` setting it checks the body's `timestamp` field.
    public var toleranceSeconds: Int?
    /// `hmac`: header carrying the signature (default `X-Signature`).
    public var header: String?
    /// `hmac`: text before the signature in the header, such as `sha256=`.
    public var prefix: String?
    /// `hmac`: the hash (default sha256).
    public var algorithm: DigestAlgorithm
    /// `hmac`: how the signature is written (default hex).
    public var encoding: SignatureEncoding
    /// `token`: where the token is (default the `Authorization: Bearer` header).
    public var tokenLocation: TokenLocation
    /// `browser-use-v2`: what the signature covers (default the whole body).
    public var signedPart: SignedPart
    /// `twilio`: the URL the sender calls, as the sender sees it (not the one behind a proxy),
    /// without a query string: the request's own is appended.
    public var publicURL: String?

    public init(
        scheme: VerificationScheme,
        secrets: [String] = [],
        toleranceSeconds: Int? = nil,
        header: String? = nil,
        prefix: String? = nil,
        algorithm: DigestAlgorithm = .sha256,
        encoding: SignatureEncoding = .hex,
        tokenLocation: TokenLocation = .bearer,
        signedPart: SignedPart = .body,
        publicURL: String? = nil
    ) {
        self.scheme = scheme
        self.secrets = secrets
        self.toleranceSeconds = toleranceSeconds
        self.header = header
        self.prefix = prefix
        self.algorithm = algorithm
        self.encoding = encoding
        self.tokenLocation = tokenLocation
        self.signedPart = signedPart
        self.publicURL = publicURL
    }
}
