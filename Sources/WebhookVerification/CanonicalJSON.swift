/// Re-serialises JSON exactly as Python's `json.dumps(value, separators=(",", ":"), sort_keys=True)`
/// does with its default `ensure_ascii=True`: the form Browser Use signs in its timestamped scheme.
///
/// Keys are sorted by code point, integers keep their digits, floats use Python's `repr` (fixed
/// notation for exponents from -4 to 15, otherwise `1e+16` style), non-ASCII characters become
/// lower-case `\uXXXX` escapes (surrogate pairs above U+FFFF).
public enum CanonicalJSON {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The canonical form of `json`, or of its top-level member `member` when given.
    public static func pythonSorted(_ json: [UInt8], member: String? = nil) throws(Failure) -> [UInt8] {
        var value = try JSONValue.parse(json)
        if let member {
            guard case .object(let fields) = value, let inner = fields.last(where: { $0.key == member })?.value else {
                throw Failure(description: "the body has no '\(member)' object")
            }
            value = inner
        }
        var output: [UInt8] = []
        output.reserveCapacity(json.count)
        write(value, to: &output)
        return output
    }

    static func write(_ value: JSONValue, to output: inout [UInt8]) {
        switch value {
        case .null: output += Array("null".utf8)
        case .boolean(let flag): output += Array((flag ? "true" : "false").utf8)
        case .integer(let digits): output += Array(digits.utf8)
        case .float(let number): output += Array(pythonRepr(number).utf8)
        case .string(let text): writeString(text, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                write(element, to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let fields):
            // Python keeps the last of duplicate keys; sort by code point like Python's str.
            var unique: [String: JSONValue] = [:]
            for (key, value) in fields { unique[key] = value }
            let keys = unique.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) { $0.value < $1.value } }
            output.append(UInt8(ascii: "{"))
            for (index, key) in keys.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                write(unique[key]!, to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// `text` as a JSON string, quotes included.
    public static func quoted(_ text: String) -> String {
        var output: [UInt8] = []
        writeString(text, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    public static func writeString(_ text: String, to output: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        output.append(UInt8(ascii: "\""))
        for unit in text.utf16 {
            switch unit {
            case 0x22: output += Array("\\\"".utf8)
            case 0x5C: output += Array("\\\\".utf8)
            case 0x0A: output += Array("\\n".utf8)
            case 0x0D: output += Array("\\r".utf8)
            case 0x09: output += Array("\\t".utf8)
            case 0x08: output += Array("\\b".utf8)
            case 0x0C: output += Array("\\f".utf8)
            case 0x20...0x7F: output.append(UInt8(unit))
            default:
                output += Array("\\u".utf8)
                for shift in stride(from: 12, through: 0, by: -4) { output.append(hex[Int(unit >> UInt16(shift) & 0xF)]) }
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// Python's `repr(float)`: the shortest digits that round-trip, fixed notation when the decimal
    /// exponent is in -4...15, otherwise scientific with a signed, at least two-digit exponent.
    static func pythonRepr(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
        if number == 0 { return number.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description also gives the shortest round-trip digits; take them apart.
        var text = "\(number.magnitude)"
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...])!
            text = String(text[..<e])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let integerPart = String(parts[0])
        let fractionPart = parts.count > 1 ? String(parts[1]) : ""
        var digits = integerPart + fractionPart
        var pointPosition = integerPart.count + exponent  // value = 0.digits × 10^pointPosition
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let decimalExponent = pointPosition - 1
        let sign = number < 0 ? "-" : ""
        if (-4...15).contains(decimalExponent) {
            if decimalExponent >= 0 {
                let whole = digits.count > decimalExponent + 1
                    ? String(digits.prefix(decimalExponent + 1))
                    : digits + String(repeating: "0", count: decimalExponent + 1 - digits.count)
                let fraction = digits.count > decimalExponent + 1 ? String(digits.dropFirst(decimalExponent + 1)) : "0"
                return sign + whole + "." + fraction
            }
            return sign + "0." + String(repeating: "0", count: -decimalExponent - 1) + digits
        }
        let mantissa = digits.count > 1 ? String(digits.prefix(1)) + "." + String(digits.dropFirst()) : digits
        let magnitude = abs(decimalExponent)
        return sign + mantissa + "e" + (decimalExponent < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") + String(magnitude)
    }
}
