/// Reads `application/x-www-form-urlencoded` bytes (a form body, or a query string) the way
/// Python's `urllib.parse.parse_qsl(keep_blank_values=True)` does, which is what the senders'
/// libraries sign against: fields split on `&`, name and value on the first `=`, `+` is a space,
/// `%XX` a byte, and a `%` not followed by two hex digits is kept as it is.
public enum URLEncodedForm {
    /// The fields in the order sent; empty pieces (`a=1&&b=2`) are skipped, a name without `=`
    /// has an empty value.
    /// - Throws: `FormError` when there are more than `FormLimits.maxFields` fields.
    public static func parse(_ bytes: some Collection<UInt8>) throws(FormError) -> [FormField] {
        var fields: [FormField] = []
        for piece in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard fields.count < FormLimits.maxFields else {
                throw FormError("form has more than \(FormLimits.maxFields) fields")
            }
            let equals = piece.firstIndex(of: UInt8(ascii: "="))
            let name = decode(piece[..<(equals ?? piece.endIndex)])
            let value = equals.map { decode(piece[piece.index(after: $0)...]) } ?? []
            fields.append(FormField(name: String(decoding: name, as: UTF8.self), value: value))
        }
        return fields
    }

    /// Percent-decodes one name or value; `+` is a space.
    static func decode(_ text: some Collection<UInt8>) -> [UInt8] {
        let bytes = Array(text)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count, let high = Verifier.hexValue(bytes[index + 1]), let low = Verifier.hexValue(bytes[index + 2]) {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return output
    }
}
