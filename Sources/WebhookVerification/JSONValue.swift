import Foundation

/// A JSON document as a tree, keeping what Python's json module keeps: integers as their digits
/// (any size), floats as doubles, object members in order (duplicates included).
public indirect enum JSONValue: Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case integer(String)
    case float(Double)
    case boolean(Bool)
    case null

    /// Parses `bytes` as one JSON document (UTF-8, nesting up to 128 levels).
    public static func parse(_ bytes: [UInt8]) throws(CanonicalJSON.Failure) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        return try parser.parseDocument()
    }
}

struct JSONParser {
    let bytes: [UInt8]
    var position = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(CanonicalJSON.Failure) -> JSONValue {
        skipWhitespace()
        let value = try parseJSONValue()
        skipWhitespace()
        guard position == bytes.count else { throw fail("unexpected data after the JSON value") }
        return value
    }

    func fail(_ what: String) -> CanonicalJSON.Failure { CanonicalJSON.Failure(description: "invalid JSON: \(what) at byte \(position)") }

    mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
    }

    mutating func parseJSONValue() throws(CanonicalJSON.Failure) -> JSONValue {
        guard position < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 128 else { throw fail("nesting too deep") }
            position += 1
            var fields: [(key: String, value: JSONValue)] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(fields)
            }
            while true {
                skipWhitespace()
                guard case .string(let key) = try parseJSONValue() else { throw fail("expected a string key") }
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                skipWhitespace()
                fields.append((key, try parseJSONValue()))
                skipWhitespace()
                guard position < bytes.count else { throw fail("unexpected end of input") }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "}") { return .object(fields) }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 128 else { throw fail("nesting too deep") }
            position += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseJSONValue())
                skipWhitespace()
                guard position < bytes.count else { throw fail("unexpected end of input") }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "]") { return .array(elements) }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): return try literal("true", .boolean(true))
        case UInt8(ascii: "f"): return try literal("false", .boolean(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default:
            return try parseNumber()
        }
    }

    mutating func literal(_ word: String, _ value: JSONValue) throws(CanonicalJSON.Failure) -> JSONValue {
        let expected = Array(word.utf8)
        guard bytes.count - position >= expected.count, Array(bytes[position..<position + expected.count]) == expected else {
            throw fail("unexpected character")
        }
        position += expected.count
        return value
    }

    mutating func parseNumber() throws(CanonicalJSON.Failure) -> JSONValue {
        let start = position
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        var isFloat = false
        let digitsStart = position
        while position < bytes.count {
            let byte = bytes[position]
            if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                position += 1
            } else if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
                || ((byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")) && isFloat)
            {
                isFloat = true
                position += 1
            } else {
                break
            }
        }
        guard position > digitsStart else { throw fail("unexpected character") }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isFloat {
            guard let number = Double(text) else { throw fail("invalid number") }
            return .float(number)
        }
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard digits.count == 1 || !digits.hasPrefix("0") else { throw fail("leading zero in number") }
        return .integer(digits.allSatisfy { $0 == "0" } ? "0" : text)
    }

    mutating func parseString() throws(CanonicalJSON.Failure) -> String {
        position += 1
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flush() throws(CanonicalJSON.Failure) {
            guard !raw.isEmpty else { return }
            guard let text = String(validating: raw, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            scalars.append(contentsOf: text.unicodeScalars)
            raw.removeAll(keepingCapacity: true)
        }
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                try flush()
                return String(scalars)
            case UInt8(ascii: "\\"):
                try flush()
                guard position < bytes.count else { throw fail("unexpected end of input") }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var unit = try hex4()
                    if (0xD800...0xDBFF).contains(unit), bytes.count - position >= 6,
                        bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
                    {
                        let saved = position
                        position += 2
                        let low = try hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            position = saved
                        }
                    }
                    scalars.append(Unicode.Scalar(unit) ?? "\u{FFFD}")
                default: throw fail("invalid escape")
                }
            default:
                guard byte >= 0x20 else { throw fail("control character in string") }
                raw.append(byte)
            }
        }
        throw fail("unterminated string")
    }

    mutating func hex4() throws(CanonicalJSON.Failure) -> UInt32 {
        guard bytes.count - position >= 4, let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16) else {
            throw fail("invalid \\u escape")
        }
        position += 4
        return value
    }
}

extension JSONValue {
    /// The document as compact JSON, object members in their order (duplicates kept), integers
    /// with their digits.
    public var bytes: [UInt8] {
        var output: [UInt8] = []
        write(to: &output)
        return output
    }

    private func write(to output: inout [UInt8]) {
        switch self {
        case .object(let fields):
            output.append(UInt8(ascii: "{"))
            for (index, field) in fields.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                CanonicalJSON.writeString(field.key, to: &output)
                output.append(UInt8(ascii: ":"))
                field.value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        default:
            CanonicalJSON.write(self, to: &output)
        }
    }

    /// This document with the value at `pointer` (RFC 6901) set to `value`: a missing object
    /// member is added, an array index replaced, `-` appends.
    public func setting(_ pointer: String, to value: JSONValue) throws(JSONPointerError) -> JSONValue {
        guard pointer.hasPrefix("/") else { throw JSONPointerError("'\(pointer)' is not a JSON pointer (it starts with /)") }
        let tokens = pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~") }
        return try setting(tokens[...], to: value, pointer: pointer)
    }

    private func setting(_ tokens: ArraySlice<String>, to value: JSONValue, pointer: String) throws(JSONPointerError) -> JSONValue {
        guard let token = tokens.first else { return value }
        let rest = tokens.dropFirst()
        switch self {
        case .object(var fields):
            if let index = fields.lastIndex(where: { $0.key == token }) {
                fields[index].value = try fields[index].value.setting(rest, to: value, pointer: pointer)
            } else {
                guard rest.isEmpty else { throw JSONPointerError("\(pointer): there is no member '\(token)' to go into") }
                fields.append((key: token, value: value))
            }
            return .object(fields)
        case .array(var elements):
            if token == "-", rest.isEmpty {
                elements.append(value)
            } else if let index = Int(token), elements.indices.contains(index) {
                elements[index] = try elements[index].setting(rest, to: value, pointer: pointer)
            } else {
                throw JSONPointerError("\(pointer): '\(token)' is not an index of an array of \(elements.count)")
            }
            return .array(elements)
        default:
            throw JSONPointerError("\(pointer): '\(token)' goes into a value that is neither an object nor an array")
        }
    }
}

/// A JSON pointer that does not lead anywhere in a document.
public struct JSONPointerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
