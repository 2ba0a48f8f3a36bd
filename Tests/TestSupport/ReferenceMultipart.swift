import Foundation

/// Multipart bodies as urllib3's encoder (what `requests` sends) writes them, so that the receiver
/// is tested on bodies it did not write itself.
public enum ReferenceMultipart {
    public struct Encoded: Decodable, Sendable {
        public var contentType: String
        public var body: [UInt8]
        /// The bytes of the file part, as Python made them.
        public var data: [UInt8]

        enum CodingKeys: String, CodingKey {
            case contentType = "content_type", body, data
        }
    }

    /// Encodes `fields`, a Python list of urllib3 fields in which `data` names the bytes that the
    /// Python expression `data` evaluates to, such as `bytes(range(256))`.
    public static func encode(fields: String, data: String) throws -> Encoded {
        let script = """
            import json, sys, urllib3
            data = \(data)
            body, content_type = urllib3.encode_multipart_formdata(\(fields))
            sys.stdout.buffer.write(json.dumps({"content_type": content_type, "body": list(body), "data": list(data)}).encode())
            """
        return try JSONDecoder().decode(Encoded.self, from: try ReferenceSigner.python(["-c", script]))
    }
}
