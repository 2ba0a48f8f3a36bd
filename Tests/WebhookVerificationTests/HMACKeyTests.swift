import Testing
import WebhookVerification

/// A key made ready once gives the MACs the one-shot HMAC gives, also when shared by many tasks.
@Suite struct HMACKeyTests {
    /// RFC 4231, test case 2 ("Jefe"), and keys of every length that HMAC treats differently:
    /// empty, shorter than a block, exactly a block, longer than a block (hashed first).
    @Test(arguments: DigestAlgorithm.allCases) func matchesTheOneShotHMAC(algorithm: DigestAlgorithm) throws {
        let jefe = try #require(HMACKey(.sha256, key: Array("Jefe".utf8)))
        #expect(
            Digest.hex(jefe.mac(Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let keys: [[UInt8]] = [[], Array("s".utf8), [UInt8](repeating: 0x61, count: 64), [UInt8](repeating: 0x62, count: 128), [UInt8](repeating: 0x63, count: 200)]
        let messages: [[UInt8]] = [[], Array("{\"type\":\"ping\"}".utf8), [UInt8](repeating: 0x7b, count: 100_000)]
        for key in keys {
            let ready = try #require(HMACKey(algorithm, key: key))
            for message in messages {
                #expect(ready.mac(message) == Digest.hmac(algorithm, key: key, data: message), "key of \(key.count) bytes, message of \(message.count)")
                #expect(ready.mac(message).count == [DigestAlgorithm.sha1: 20, .sha256: 32, .sha512: 64][algorithm])
            }
        }
    }

    /// One key used by 64 tasks at once, each with messages of its own: every MAC is right.
    @Test func aKeyIsSharedSafely() async throws {
        let key = Array("shared secret".utf8)
        let ready = try #require(HMACKey(.sha256, key: key))
        let wrong = await withTaskGroup(of: Int.self) { group in
            for task in 0..<64 {
                group.addTask {
                    var wrong = 0
                    for index in 0..<200 {
                        let message = Array("task \(task) message \(index)".utf8)
                        if ready.mac(message) != Digest.hmac(.sha256, key: key, data: message) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(wrong == 0)
    }
}
