import Foundation
import WebhookVerification

/// Changes to a fixture before it is signed, as `moonhook sign` and `send` take them: values set
/// by JSON pointer (`/payload/status=stopped`; in a form body, `/Field=value`), the event type
/// written where the source reads it (a pointer, a header or a form field), and headers.
public struct FixtureOverrides: Sendable {
    /// `(pointer, value)`: a value that reads as JSON is that JSON, anything else a string.
    public var values: [(pointer: String, value: String)] = []
    public var type: String?
    /// Sent after the signature headers, replacing one of the same name.
    public var headers: [(name: String, value: String)] = []

    public init(values: [(pointer: String, value: String)] = [], type: String? = nil, headers: [(name: String, value: String)] = []) {
        self.values = values
        self.type = type
        self.headers = headers
    }

    /// Whether the body changes.
    public var changesBody: Bool { !values.isEmpty || type != nil }

    /// Reads `/pointer=value`.
    public static func value(_ text: String) throws(FixtureOverrideError) -> (pointer: String, value: String) {
        guard text.hasPrefix("/"), let equals = text.firstIndex(of: "=") else {
            throw FixtureOverrideError("--set takes /json/pointer=value, got '\(text)'")
        }
        return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    }

    /// Reads `Name: value` (or `Name=value`).
    public static func header(_ text: String) throws(FixtureOverrideError) -> (name: String, value: String) {
        guard let colon = text.firstIndex(where: { $0 == ":" || $0 == "=" }), colon != text.startIndex else {
            throw FixtureOverrideError("--header takes NAME:VALUE, got '\(text)'")
        }
        return (String(text[..<colon]).trimmingCharacters(in: .whitespaces), String(text[text.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
    }

    /// The body with the values and the type set, and the headers the type adds. `typeSources`
    /// are where the source reads its event type (`source.yaml`'s `type:`).
    public func apply(
        to body: [UInt8], contentType: String, typeSources: [SourceConfiguration.FieldSource]
    ) throws(FixtureOverrideError) -> (body: [UInt8], headers: [(name: String, value: String)]) {
        var values = self.values
        var headers: [(name: String, value: String)] = []
        if let type {
            switch typeSources.first {
            case .pointer(let pointer): values.append((pointer, CanonicalJSON.quoted(type)))
            case .header(let name): headers.append((name, type))
            case .form(let field): values.append(("/" + field, field == "command" && !type.hasPrefix("/") ? "/" + type : type))
            default:
                throw FixtureOverrideError("this source's event type is not a field of the request (\(typeSources.first.map { "\($0)" } ?? "none")): --type cannot set it")
            }
        }
        guard !values.isEmpty else { return (body, headers) }
        switch BodyFormat(contentType: contentType) {
        case .urlEncodedForm: return (try Self.settingFormFields(values, in: body), headers)
        case .multipartForm: throw FixtureOverrideError("--set and --type change JSON and URL-encoded form bodies, not multipart ones")
        default: break
        }
        var document: JSONValue
        do {
            document = try JSONValue.parse(body)
        } catch {
            throw FixtureOverrideError("--set needs a JSON body: \(error)")
        }
        for (pointer, text) in values {
            let value = (try? JSONValue.parse(Array(text.utf8))) ?? .string(text)
            do {
                document = try document.setting(pointer, to: value)
            } catch {
                throw FixtureOverrideError(error.description)
            }
        }
        return (document.bytes, headers)
    }

    /// A form body with top-level fields set (`/Name`), in their order, new ones at the end.
    private static func settingFormFields(_ values: [(pointer: String, value: String)], in body: [UInt8]) throws(FixtureOverrideError) -> [UInt8] {
        var fields: [(String, String)]
        do {
            fields = try URLEncodedForm.parse(body).map { ($0.name, String(decoding: $0.value, as: UTF8.self)) }
        } catch {
            throw FixtureOverrideError("the form body cannot be read: \(error.message)")
        }
        for (pointer, text) in values {
            let name = String(pointer.dropFirst())
            guard !name.isEmpty, !name.contains("/") else { throw FixtureOverrideError("\(pointer): a form body has only top-level fields (/Name)") }
            // A JSON string given for a form field is its text.
            let value = (try? JSONValue.parse(Array(text.utf8))).flatMap { if case .string(let string) = $0 { string } else { nil } } ?? text
            if let index = fields.firstIndex(where: { $0.0 == name }) { fields[index].1 = value } else { fields.append((name, value)) }
        }
        return Array(fields.map { "\(formEncoded($0.0))=\(formEncoded($0.1))" }.joined(separator: "&").utf8)
    }

    private static let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._* ")

    private static func formEncoded(_ text: String) -> String {
        (text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text).replacingOccurrences(of: " ", with: "+")
    }
}

/// An override that cannot be applied, in one line.
public struct FixtureOverrideError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
