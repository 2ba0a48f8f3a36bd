/// A header value of the shape `token; name=value; name="quoted \"value\""`, as `Content-Type` and a
/// multipart part's `Content-Disposition` are written (RFC 9110 §5.6.6). Read in one pass over the
/// bytes; a malformed parameter is skipped rather than refused, as browsers and servers do.
struct ParameterizedHeader {
    /// The leading token, lower-cased: `multipart/form-data`, `form-data`.
    var value: String
    /// Parameters by lower-cased name; the first of a repeated name wins.
    var parameters: [String: String]

    init(_ text: String) {
        let bytes = Array(text.utf8)
        var index = 0
        func skipSpaces() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
        }
        // Runs once per request: the stops are two bytes, not a set.
        func token(until stop: UInt8, or other: UInt8? = nil) -> String {
            let start = index
            while index < bytes.count, bytes[index] != stop, bytes[index] != other { index += 1 }
            var end = index
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }
        skipSpaces()
        value = token(until: UInt8(ascii: ";")).lowercased()
        parameters = [:]
        while index < bytes.count {
            index += 1  // the ';'
            skipSpaces()
            let name = token(until: UInt8(ascii: "="), or: UInt8(ascii: ";")).lowercased()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { continue }
            index += 1
            skipSpaces()
            let parameter: String
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                index += 1
                var quoted: [UInt8] = []
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count { index += 1 }
                    quoted.append(bytes[index])
                    index += 1
                }
                if index < bytes.count { index += 1 }  // the closing quote, when there is one
                _ = token(until: UInt8(ascii: ";"))  // anything after it up to the next parameter
                parameter = String(decoding: quoted, as: UTF8.self)
            } else {
                parameter = token(until: UInt8(ascii: ";"))
            }
            if !name.isEmpty, parameters[name] == nil { parameters[name] = parameter }
        }
    }
}
