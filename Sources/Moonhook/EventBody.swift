import LuaRuntime
import WebhookVerification

/// `event.body`: what a handler reads of a delivery's raw bytes. A JSON body is decoded by the
/// host straight onto the Lua stack; a form body becomes a table of its fields, unless it has the
/// source's `form_json` field, whose JSON is then the body (Slack's and GitHub's `payload`).
enum EventBody {
    /// The body of a delivery received with `contentType`.
    static func value(raw: [UInt8], contentType: String?, formJSON: String?) -> LuaValue {
        // The receiver read the form before storing it, so it reads again here.
        guard let format = BodyFormat(contentType: contentType), format.isForm, let fields = try? format.fields(of: raw) else {
            return .json(raw)
        }
        if let formJSON, let field = fields.first(where: { $0.name == formJSON && !$0.isFile }) {
            return .json(field.value)
        }
        return table(fields)
    }

    /// Fields by name: a field sent once is its value, a repeated one an array of its values in the
    /// order sent; a multipart file is `{filename, content_type, data}`.
    static func table(_ fields: [FormField]) -> LuaValue {
        var values: [String: [LuaValue]] = [:]
        for field in fields {
            values[field.name, default: []].append(value(of: field))
        }
        return .table(array: [], fields: values.mapValues { $0.count == 1 ? $0[0] : .table(array: $0, fields: [:]) })
    }

    private static func value(of field: FormField) -> LuaValue {
        guard let filename = field.filename else { return .string(field.value) }
        var file: [String: LuaValue] = ["filename": .string(filename), "data": .string(field.value)]
        if let contentType = field.contentType { file["content_type"] = .string(contentType) }
        return .table(array: [], fields: file)
    }
}
