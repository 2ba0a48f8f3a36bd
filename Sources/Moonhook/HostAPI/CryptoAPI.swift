import COpenSSL
import Foundation
import LuaRuntime
import WebhookVerification

/// `crypto`, `hex`, `base64` and `uuid()` for handlers: digests and MACs on libcrypto, encodings,
/// random bytes. Digests return raw bytes; `hex.encode` or `base64.encode` make text of them.
public enum CryptoAPI {
    /// Most bytes one `crypto.random_bytes` call returns.
    static let maxRandomBytes = 4096

    public static func libraries() -> [LuaLibrary] {
        var crypto = LuaLibrary(name: "crypto")
        crypto.function("hmac", #"fun(algorithm: "sha1"|"sha256"|"sha512", key: string, data: string): string"#, "The HMAC of data under key, raw bytes") { call in
            let algorithm = try digestAlgorithm(call, 1)
            return try call.returning(.string(Digest.hmac(algorithm, key: try call.bytes(2), data: try call.bytes(3))))
        }
        crypto.function("sha256", "fun(data: string): string", "SHA-256 of data, raw bytes") { call in try call.returning(.string(Digest.hash(.sha256, try call.bytes(1)))) }
        crypto.function("sha1", "fun(data: string): string", "SHA-1 of data, raw bytes") { call in try call.returning(.string(Digest.hash(.sha1, try call.bytes(1)))) }
        crypto.function("sha512", "fun(data: string): string", "SHA-512 of data, raw bytes") { call in try call.returning(.string(Digest.hash(.sha512, try call.bytes(1)))) }
        crypto.function("equals", "fun(a: string, b: string): boolean", "Whether a equals b, compared in constant time") { call in
            try call.returning(.boolean(Digest.constantTimeEquals(try call.bytes(1), try call.bytes(2))))
        }
        crypto.function("random_bytes", "fun(count: integer): string", "count random bytes (at most 4096)") { call in
            let count = try call.integer(1)
            guard (0...Int64(maxRandomBytes)).contains(count) else {
                throw LuaHostError("crypto.random_bytes: count must be between 0 and \(maxRandomBytes)")
            }
            return try call.returning(.string(randomBytes(Int(count))))
        }

        var hex = LuaLibrary(name: "hex")
        hex.function("encode", "fun(bytes: string): string", "Lower-case hex of bytes") { call in try call.returning(.string(Digest.hex(try call.bytes(1)))) }
        hex.function("decode", "fun(text: string): string", "The bytes of hex text") { call in
            let text = try call.string(1)
            guard let bytes = decodeHex(text) else { throw LuaHostError("hex.decode: not a hex string") }
            return try call.returning(.string(bytes))
        }

        var base64 = LuaLibrary(name: "base64")
        base64.function("encode", "fun(bytes: string): string", "Base64 of bytes") { call in try call.returning(.string(Data(try call.bytes(1)).base64EncodedString())) }
        base64.function("decode", "fun(text: string): string", "The bytes of base64 (or URL-safe base64) text") { call in
            let text = try call.string(1)
            guard let data = Data(base64Encoded: text) ?? Data(base64Encoded: urlSafeToStandard(text)) else {
                throw LuaHostError("base64.decode: not base64")
            }
            return try call.returning(.string(Array(data)))
        }

        var globals = LuaLibrary(name: "_G")
        globals.function("uuid", "fun(): string", "A random UUID (version 4), lower-case") { call in try call.returning(.string(UUID().uuidString.lowercased())) }
        return [crypto, hex, base64, globals]
    }

    private static func digestAlgorithm(_ call: borrowing LuaCall, _ index: Int) throws -> DigestAlgorithm {
        let name = try call.string(index)
        guard let algorithm = DigestAlgorithm(rawValue: name.lowercased()) else {
            throw LuaHostError("\(call.functionName): algorithm must be sha1, sha256 or sha512, got '\(name)'")
        }
        return algorithm
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { precondition(RAND_bytes(&bytes, Int32(count)) == 1, "libcrypto has no randomness") }
        return bytes
    }

    static func decodeHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let value = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
            index += 2
        }
        return bytes
    }

    /// `-_` to `+/` and padding added, so that URL-safe base64 decodes too.
    static func urlSafeToStandard(_ text: String) -> String {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.utf8.count % 4 != 0 { standard += "=" }
        return standard
    }
}
