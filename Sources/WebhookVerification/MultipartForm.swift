import Foundation

/// Reads a `multipart/form-data` body (RFC 7578) into its fields.
///
/// Hostile bodies are the normal case here, so every step is bounded: the boundary is at most 70
/// bytes (RFC 2046), each search for it is a linear scan from where the last one ended, a part's
/// header block is capped by `FormLimits.maxPartHeaderBytes` and the number of parts by
/// `FormLimits.maxFields`. Anything that does not follow the grammar (no opening or closing
/// boundary, a part without a `form-data` disposition or a name) is refused with a one-line reason.
public enum MultipartForm {
    public static func parse(_ body: [UInt8], boundary: String) throws(FormError) -> [FormField] {
        let boundaryBytes = Array(boundary.utf8)
        guard (1...70).contains(boundaryBytes.count), !boundaryBytes.contains(where: { $0 == 0x0D || $0 == 0x0A }) else {
            throw FormError("multipart boundary must be 1 to 70 characters")
        }
        let crlf: [UInt8] = [0x0D, 0x0A]
        let dashes: [UInt8] = [UInt8(ascii: "-"), UInt8(ascii: "-")]
        let delimiter = dashes + boundaryBytes
        let separator = crlf + delimiter
        // The first boundary opens the body or follows a preamble and a line break.
        var position: Int
        if body.starts(with: delimiter) {
            position = delimiter.count
        } else if let first = body.firstRange(of: separator) {
            position = first.upperBound
        } else {
            throw FormError("multipart body has no boundary line")
        }
        var fields: [FormField] = []
        while true {
            if body[position...].starts(with: dashes) { return fields }
            while position < body.count, body[position] == 0x20 || body[position] == 0x09 { position += 1 }
            guard body[position...].starts(with: crlf) else { throw FormError("multipart boundary line is malformed") }
            position += 2
            guard fields.count < FormLimits.maxFields else { throw FormError("multipart body has more than \(FormLimits.maxFields) parts") }
            let headers: ArraySlice<UInt8>
            let contentStart: Int
            if body[position...].starts(with: crlf) {
                headers = []
                contentStart = position + 2
            } else {
                let window = body[position..<min(body.count, position + FormLimits.maxPartHeaderBytes + 4)]
                guard let end = window.firstRange(of: crlf + crlf) else {
                    throw FormError("multipart part headers are unterminated or longer than \(FormLimits.maxPartHeaderBytes) bytes")
                }
                headers = body[position..<end.lowerBound]
                contentStart = end.upperBound
            }
            guard let next = body[contentStart...].firstRange(of: separator) else {
                throw FormError("multipart body has no closing boundary")
            }
            fields.append(try field(headers: headers, content: body[contentStart..<next.lowerBound]))
            position = next.upperBound
        }
    }

    /// The field of one part, from its header block and content.
    private static func field(headers: ArraySlice<UInt8>, content: ArraySlice<UInt8>) throws(FormError) -> FormField {
        var disposition: ParameterizedHeader?
        var contentType: String?
        for line in headers.split(separator: 0x0A) {
            let text = String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else { continue }
            let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch text[..<colon].lowercased() {
            case "content-disposition": disposition = ParameterizedHeader(value)
            case "content-type": contentType = value
            default: break
            }
        }
        guard let disposition, disposition.value == "form-data" else { throw FormError("multipart part has no form-data Content-Disposition") }
        guard let name = disposition.parameters["name"] else { throw FormError("multipart part has no name") }
        return FormField(name: name, value: Array(content), filename: disposition.parameters["filename"], contentType: contentType)
    }
}
