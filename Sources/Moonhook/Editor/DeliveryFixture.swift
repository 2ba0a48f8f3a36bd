import Foundation
import MoonhookStore
import WebhookVerification

/// A stored delivery made into a test fixture (`moonhook fixture ID`): its body, with every
/// secret of its source replaced, and a test case to paste that sends it with the headers it came
/// with, less those that a test signs anew (the signature) or that describe the connection.
public struct DeliveryFixture: Sendable {
    /// `<type>.<seq>.json` (`.form` for a form body).
    public var fileName: String
    public var body: [UInt8]
    /// A case for a `*_test.lua` file, naming the fixture as `fixtures/<fileName>`.
    public var caseText: String

    /// Headers a test never needs: the connection's, and credentials.
    static let connectionHeaders: Set<String> = [
        "host", "content-length", "content-type", "connection", "authorization", "cookie", "accept-encoding", "transfer-encoding", "x-forwarded-for",
        "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded",
    ]

    /// The fixture of `delivery`, whose source's `source.yaml` lies in `handlersFolder`; secret
    /// values are read from `environment` (those it lacks cannot be redacted, but a test never
    /// needs the signature headers that carry them, and those are always left out).
    public init(delivery: InboxDelivery, handlersFolder: URL, environment: [String: String]) {
        let path = handlersFolder.appending(path: delivery.source).appending(path: "source.yaml").path
        let variables = SourceConfiguration.variables(path: path)
        var placeholders = environment
        for name in variables.references + variables.handlerSecrets where placeholders[name] == nil { placeholders[name] = "whsec_" + Data(name.utf8).base64EncodedString() }
        let contentType = delivery.headers["content-type"] ?? "application/json"
        var dropped = Self.connectionHeaders
        var typeHeader: String?
        if let configuration = try? SourceConfiguration.load(path: path, environment: placeholders),
            let verifier = try? Verifier(configuration.verifier),
            let signed = try? verifier.sign(body: delivery.body, now: Date(), contentType: contentType)
        {
            dropped.formUnion(signed.map { $0.name.lowercased() })
            if case .header(let name)? = configuration.type.first { typeHeader = name.lowercased() }
        }
        let secrets = (variables.references + variables.handlerSecrets).compactMap { environment[$0] }.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
        func redacted(_ text: String) -> String { secrets.reduce(text) { $0.replacingOccurrences(of: $1, with: "[redacted]") } }

        let form = BodyFormat(contentType: contentType) == .urlEncodedForm
        let slug = delivery.type.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }
        fileName = "\(String(slug)).\(delivery.seq).\(form ? "form" : "json")"
        let text = String(decoding: delivery.body, as: UTF8.self)
        body = String(validating: delivery.body, as: UTF8.self) != nil ? Array(redacted(text).utf8) : delivery.body

        let headers = delivery.headers.filter { !dropped.contains($0.key) && $0.key != typeHeader }.sorted { $0.key < $1.key }
        var lines = [
            "  {",
            "    name = \(Self.lua("delivery \(delivery.seq) (\(delivery.type), \(delivery.id))")),",
            "    event = \(Self.lua("fixtures/\(fileName)")),",
            "    type = \(Self.lua(delivery.type)),",
        ]
        if !form, !contentType.lowercased().hasPrefix("application/json") { lines.append("    content_type = \(Self.lua(contentType)),") }
        if !headers.isEmpty {
            lines.append("    headers = {")
            for (name, value) in headers { lines.append("      [\(Self.lua(name))] = \(Self.lua(redacted(value))),") }
            lines.append("    },")
        }
        lines += ["    expect = {", "      -- what must follow: kv, calls, logs, result, error (docs/handlers.md)", "    },", "  },"]
        caseText = lines.joined(separator: "\n") + "\n"
    }

    /// `text` as a Lua string literal.
    static func lua(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f: result += String(format: "\\%03d", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
