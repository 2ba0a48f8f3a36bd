import Hummingbird
import WebhookVerification

/// The fields of a console form, posted or in a query string, read the way browsers write them
/// (`+` is a space, `%XX` a byte); the first of a repeated name counts.
struct FormValues: Sendable {
    let values: [String: String]

    init(_ fields: [FormField]) {
        values = Dictionary(fields.map { ($0.name, String(decoding: $0.value, as: UTF8.self)) }) { first, _ in first }
    }

    /// The request's query string (a GET form's fields); one that cannot be read has none.
    init(query request: Request) {
        self.init((try? URLEncodedForm.parse(Array((request.uri.query ?? "").utf8))) ?? [])
    }

    /// A posted form's fields.
    static func posted(_ request: Request) async throws -> FormValues {
        let body = try await request.body.collect(upTo: 64 * 1024)
        do {
            return FormValues(try URLEncodedForm.parse(Array(buffer: body)))
        } catch {
            throw HTTPFailure(.badRequest, "the form cannot be read: \(error.message)")
        }
    }

    subscript(_ name: String) -> String? { values[name] }

    func get(_ name: String) -> String? { values[name] }

    /// The field's value, nil when it is missing or empty (a form's field left blank).
    func value(_ name: String) -> String? { values[name].flatMap { $0.isEmpty ? nil : $0 } }
}
