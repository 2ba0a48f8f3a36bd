import HTTPTypes
import Hummingbird
import LuaRuntime
import WebhookVerification

/// The answer a `respond: sync` handler gives: what it returned, turned into an HTTP response.
///
/// - `{status = 200, headers = {...}, body = "text" or a table}`: that response; a table body is
///   sent as JSON, a string body as it is (`text/plain` unless a `content-type` header says else).
/// - a string: `text/plain` with that text (Slack's `url_verification` challenge).
/// - any other table: that table as JSON.
/// - nothing: 200 with `{"status":"ok"}`.
enum HandlerResponse {
    static func make(from value: LuaValue?) throws(HTTPFailure) -> Response {
        switch value {
        case nil, .nil?:
            return response(.ok, contentType: "application/json", body: Array(#"{"status":"ok"}"#.utf8), headers: [:])
        case .string(let bytes)?:
            return response(.ok, contentType: "text/plain; charset=utf-8", body: bytes, headers: [:])
        case .table(_, let fields)? where fields["status"] != nil:
            guard case .integer(let code) = fields["status"]!, (200...599).contains(code) else {
                throw HTTPFailure(.internalServerError, "handler answer: 'status' must be a whole number from 200 to 599")
            }
            var headers: [String: String] = [:]
            if case .table(_, let pairs)? = fields["headers"] {
                for (name, value) in pairs {
                    guard let text = value.text ?? value.scalarText else {
                        throw HTTPFailure(.internalServerError, "handler answer: header '\(name)' must be a string")
                    }
                    headers[name.lowercased()] = text
                }
            }
            switch fields["body"] {
            case nil, .nil?:
                return response(.init(code: Int(code)), contentType: nil, body: [], headers: headers)
            case .string(let bytes)?:
                return response(.init(code: Int(code)), contentType: "text/plain; charset=utf-8", body: bytes, headers: headers)
            case let body?:
                return response(.init(code: Int(code)), contentType: "application/json", body: try json(body), headers: headers)
            }
        case let other?:
            return response(.ok, contentType: "application/json", body: try json(other), headers: [:])
        }
    }

    private static func response(_ status: HTTPResponse.Status, contentType: String?, body: [UInt8], headers: [String: String]) -> Response {
        var fields = HTTPFields()
        if let contentType, headers["content-type"] == nil { fields[.contentType] = contentType }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
        }
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// `value` as JSON; a table with only array entries is an array, any other an object.
    static func json(_ value: LuaValue) throws(HTTPFailure) -> [UInt8] {
        var output: [UInt8] = []
        try write(value, to: &output, depth: 0)
        return output
    }

    private static func write(_ value: LuaValue, to output: inout [UInt8], depth: Int) throws(HTTPFailure) {
        guard depth < 100 else { throw HTTPFailure(.internalServerError, "handler answer is nested too deeply") }
        switch value {
        case .nil, .null: output += Array("null".utf8)
        case .boolean(let flag): output += Array((flag ? "true" : "false").utf8)
        case .integer(let number): output += Array(String(number).utf8)
        case .number(let number):
            guard number.isFinite else { throw HTTPFailure(.internalServerError, "handler answer holds NaN or infinity") }
            output += Array(String(number).utf8)
        case .string(let bytes):
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw HTTPFailure(.internalServerError, "handler answer holds a string that is not UTF-8")
            }
            CanonicalJSON.writeString(text, to: &output)
        case .json(let bytes): output += bytes
        case .table(let array, let fields) where fields.isEmpty && !array.isEmpty:
            output.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                try write(element, to: &output, depth: depth + 1)
            }
            output.append(UInt8(ascii: "]"))
        case .table(let array, let fields):
            var entries = fields
            for (index, element) in array.enumerated() { entries[String(index + 1)] = element }
            output.append(UInt8(ascii: "{"))
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                CanonicalJSON.writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                try write(entries[key]!, to: &output, depth: depth + 1)
            }
            output.append(UInt8(ascii: "}"))
        }
    }
}
