import COpenSSL

/// A secret made ready for HMAC once, when a source is loaded: libcrypto's HMAC context with the
/// key's pads already hashed, which each message copies. `Digest.hmac` looks the algorithm up in
/// OpenSSL's provider store and hashes the key again on every call, which costs about as much as
/// the MAC of a 300-byte body itself.
///
/// Sendable: the context is written only by `init`; afterwards libcrypto only reads it (each
/// message works on its own copy), so any number of requests may use one key at once.
public final class HMACKey: @unchecked Sendable {
    public let algorithm: DigestAlgorithm
    private let context: OpaquePointer

    /// Nil only if libcrypto cannot make an HMAC of `algorithm` (a broken installation).
    public init?(_ algorithm: DigestAlgorithm, key: [UInt8]) {
        guard let context = key.withUnsafeBufferPointer({ moonhook_hmac_new(algorithm.name, $0.baseAddress, $0.count) }) else { return nil }
        self.algorithm = algorithm
        self.context = context
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// The HMAC of `data`: the same bytes as `Digest.hmac(algorithm, key:data:)`.
    public func mac(_ data: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Int(EVP_MAX_MD_SIZE)) { output, count in
            count = data.withUnsafeBufferPointer { moonhook_hmac(context, $0.baseAddress, $0.count, output.baseAddress) }
        }
    }
}

extension DigestAlgorithm {
    /// OpenSSL's name of the digest.
    var name: String {
        switch self {
        case .sha1: "SHA1"
        case .sha256: "SHA256"
        case .sha512: "SHA512"
        }
    }
}
