import COpenSSL

/// Hash algorithms the verification schemes and handlers use.
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case sha1, sha256, sha512

    var evp: OpaquePointer {
        switch self {
        case .sha1: EVP_sha1()
        case .sha256: EVP_sha256()
        case .sha512: EVP_sha512()
        }
    }

    var size: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }
}

/// One-shot digests and MACs on libcrypto.
public enum Digest {
    /// The digest of `data`.
    public static func hash(_ algorithm: DigestAlgorithm, _ data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: algorithm.size)
        var length: UInt32 = 0
        data.withUnsafeBytes { input in
            _ = EVP_Digest(input.baseAddress, input.count, &output, &length, algorithm.evp, nil)
        }
        return output
    }

    /// HMAC of `data` under `key`.
    public static func hmac(_ algorithm: DigestAlgorithm, key: [UInt8], data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: algorithm.size)
        var length: UInt32 = 0
        key.withUnsafeBytes { key in
            data.withUnsafeBytes { data in
                _ = HMAC(algorithm.evp, key.baseAddress, Int32(key.count), data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, &output, &length)
            }
        }
        return output
    }

    /// Whether `a` equals `b`, in time that depends only on their lengths.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { a in
            b.withUnsafeBytes { b in
                a.count == b.count && (a.count == 0 || CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0)
            }
        }
    }

    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { output in
            let digits: StaticString = "0123456789abcdef"
            for (index, byte) in bytes.enumerated() {
                output[2 * index] = digits.utf8Start[Int(byte >> 4)]
                output[2 * index + 1] = digits.utf8Start[Int(byte & 0x0F)]
            }
            return bytes.count * 2
        }
    }

    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        hex(Array(bytes))
    }
}
