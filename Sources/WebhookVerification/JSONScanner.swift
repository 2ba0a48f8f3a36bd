/// Checks that bytes are one well-formed JSON document (UTF-8, nesting up to 128 levels) and picks
/// out the scalars at a few JSON pointers, in one pass and without building a tree: the receiver's
/// hot path, where the whole body is decoded again later by the handler's runtime.
public struct JSONScanner {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Scans `bytes`; returns, for each pointer (`/data/eventType`), the scalar there as text
    /// (strings unescaped, numbers and booleans as written) or nil.
    public static func scan(_ bytes: [UInt8], pointers: [String]) throws(Failure) -> [String?] {
        try scan(bytes, tokens: pointers.map(tokens(of:)))
    }

    /// The reference tokens of an RFC 6901 pointer (`/a~1b/0` -> `["a/b", "0"]`), for callers that
    /// split their pointers once instead of on every scan.
    public static func tokens(of pointer: String) -> [String] {
        pointer.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    /// Like `scan(_:pointers:)`, with pointers already split into their tokens.
    public static func scan(_ bytes: [UInt8], tokens targets: [[String]]) throws(Failure) -> [String?] {
        try bytes.withUnsafeBufferPointer { buffer throws(Failure) in
            var scanner = JSONScanner(input: buffer, targets: targets)
            scanner.skipWhitespace()
            try scanner.value(depth: 0)
            scanner.skipWhitespace()
            guard scanner.position == buffer.count else { throw scanner.fail("unexpected data after the JSON value") }
            return scanner.found
        }
    }

    private let input: UnsafeBufferPointer<UInt8>
    private let targets: [[String]]
    private var found: [String?]
    private var path: [String] = []
    private var position = 0

    private init(input: UnsafeBufferPointer<UInt8>, targets: [[String]]) {
        self.input = input
        self.targets = targets
        self.found = Array(repeating: nil, count: targets.count)
    }

    private func fail(_ what: String) -> Failure { Failure(description: "invalid JSON: \(what) at byte \(position)") }

    private mutating func skipWhitespace() {
        while position < input.count, input[position] == 0x20 || input[position] == 0x0A || input[position] == 0x0D || input[position] == 0x09 {
            position += 1
        }
    }

    /// Whether some pointer may lie at or below the current path.
    private var pathIsInteresting: Bool {
        targets.contains { target in
            guard target.count >= path.count else { return false }
            for index in path.indices where target[index] != path[index] { return false }
            return true
        }
    }

    private mutating func record(_ text: String) {
        for (index, target) in targets.enumerated() where target == path { found[index] = text }
    }

    private mutating func value(depth: Int) throws(Failure) {
        guard position < input.count else { throw fail("unexpected end of input") }
        guard depth < 128 else { throw fail("nesting deeper than 128 levels") }
        switch input[position] {
        case UInt8(ascii: "{"):
            position += 1
            skipWhitespace()
            if position < input.count, input[position] == UInt8(ascii: "}") {
                position += 1
                return
            }
            let interesting = pathIsInteresting
            while true {
                skipWhitespace()
                guard position < input.count, input[position] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string(keep: interesting)
                skipWhitespace()
                guard position < input.count, input[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                position += 1
                skipWhitespace()
                if interesting { path.append(key ?? "") }
                try value(depth: depth + 1)
                if interesting { path.removeLast() }
                skipWhitespace()
                guard position < input.count else { throw fail("unexpected end of input") }
                position += 1
                if input[position - 1] == UInt8(ascii: "}") { return }
                guard input[position - 1] == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            position += 1
            skipWhitespace()
            if position < input.count, input[position] == UInt8(ascii: "]") {
                position += 1
                return
            }
            let interesting = pathIsInteresting
            var index = 0
            while true {
                skipWhitespace()
                if interesting { path.append(String(index)) }
                try value(depth: depth + 1)
                if interesting { path.removeLast() }
                index += 1
                skipWhitespace()
                guard position < input.count else { throw fail("unexpected end of input") }
                position += 1
                if input[position - 1] == UInt8(ascii: "]") { return }
                guard input[position - 1] == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""):
            let interesting = pathIsInteresting
            if let text = try string(keep: interesting), interesting { record(text) }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null", record: false)
        default: try number()
        }
    }

    private mutating func literal(_ word: StaticString, record keep: Bool = true) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard input.count - position >= count, (0..<count).allSatisfy({ input[position + $0] == word.utf8Start[$0] }) else {
            throw fail("unexpected character")
        }
        position += count
        if keep, pathIsInteresting { record(word.description) }
    }

    private mutating func number() throws(Failure) {
        let start = position
        if position < input.count, input[position] == UInt8(ascii: "-") { position += 1 }
        let digits = position
        while position < input.count, input[position] >= 0x30 && input[position] <= 0x39 { position += 1 }
        guard position > digits else { throw fail("unexpected character") }
        if position - digits > 1, input[digits] == UInt8(ascii: "0") { throw fail("leading zero in number") }
        if position < input.count, input[position] == UInt8(ascii: ".") {
            position += 1
            let fraction = position
            while position < input.count, input[position] >= 0x30 && input[position] <= 0x39 { position += 1 }
            guard position > fraction else { throw fail("invalid number") }
        }
        if position < input.count, input[position] == UInt8(ascii: "e") || input[position] == UInt8(ascii: "E") {
            position += 1
            if position < input.count, input[position] == UInt8(ascii: "+") || input[position] == UInt8(ascii: "-") { position += 1 }
            let exponent = position
            while position < input.count, input[position] >= 0x30 && input[position] <= 0x39 { position += 1 }
            guard position > exponent else { throw fail("invalid number") }
        }
        if pathIsInteresting { record(String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)) }
    }

    /// Reads a string; returns its text when `keep`, after checking it either way.
    private mutating func string(keep: Bool) throws(Failure) -> String? {
        position += 1
        let start = position
        var plain = true
        var ascii = true
        while position < input.count {
            let byte = input[position]
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw fail("control character in string") }
            if byte >= 0x80 { ascii = false }
            if byte == UInt8(ascii: "\\") {
                plain = false
                position += 1
                guard position < input.count else { break }
                switch input[position] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    guard input.count - position > 4, (1...4).allSatisfy({ Self.isHex(input[position + $0]) }) else { throw fail("invalid \\u escape") }
                    position += 4
                default:
                    throw fail("invalid escape")
                }
            }
            position += 1
        }
        guard position < input.count else { throw fail("unterminated string") }
        let raw = UnsafeBufferPointer(rebasing: input[start..<position])
        position += 1
        if !ascii, String(validating: raw, as: UTF8.self) == nil { throw fail("string is not valid UTF-8") }
        guard keep else { return nil }
        if plain { return String(decoding: raw, as: UTF8.self) }
        // Escapes: let the tree parser unescape this one string.
        guard case .string(let text) = try? JSONValue.parse(Array(input[(start - 1)...(position - 1)])) else { throw fail("invalid string") }
        return text
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }
}
