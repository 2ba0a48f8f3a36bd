#if canImport(Glibc)
import Glibc
#endif
import CLua

/// Decodes JSON text straight onto a Lua stack, with no intermediate Swift objects.
///
/// Integers stay 64-bit integers (larger ones become floats), arrays get the `json.array`
/// metatable so that `[]` and `{}` survive a round trip, `null` becomes `json.null`, nesting deeper
/// than `maxDepth` is refused, strings must be valid UTF-8 (lone `\u` surrogates become U+FFFD).
struct LuaJSONDecoder {
    private let state: LuaState
    private let thread: OpaquePointer
    private let input: UnsafeRawBufferPointer
    private let maxDepth: Int
    private var position = 0
    private var scratch: [UInt8] = []

    init(state: LuaState, thread: OpaquePointer, input: UnsafeRawBufferPointer, maxDepth: Int) {
        self.state = state
        self.thread = thread
        self.input = input
        self.maxDepth = maxDepth
    }

    /// Pushes the decoded document. Stack effect: +1 on success; on failure the stack may hold partial
    /// values and the caller restores its top.
    mutating func decode() throws(LuaValueError) {
        guard lua_checkstack(thread, 4) != 0 else { throw LuaValueError("Lua stack exhausted") }
        skipWhitespace()
        try decodeValue(depth: 0)
        skipWhitespace()
        if position != input.count { throw failure("unexpected data after the JSON value") }
    }

    private func failure(_ what: String) -> LuaValueError {
        LuaValueError("invalid JSON: \(what) at byte \(position)")
    }

    private var current: UInt8 { input[position] }

    private mutating func skipWhitespace() {
        while position < input.count {
            switch input[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(LuaValueError) {
        guard position < input.count, input[position] == byte else {
            throw failure(position < input.count ? "expected \(what)" : "unexpected end of input")
        }
        position += 1
    }

    private mutating func decodeValue(depth: Int) throws(LuaValueError) {
        guard position < input.count else { throw failure("unexpected end of input") }
        switch current {
        case UInt8(ascii: "{"): try decodeObject(depth: depth + 1)
        case UInt8(ascii: "["): try decodeArray(depth: depth + 1)
        case UInt8(ascii: "\""): try decodeString()
        case UInt8(ascii: "t"):
            try literal("true")
            lua_pushboolean(thread, 1)
        case UInt8(ascii: "f"):
            try literal("false")
            lua_pushboolean(thread, 0)
        case UInt8(ascii: "n"):
            try literal("null")
            lua_pushlightuserdata(thread, nil)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try decodeNumber()
        default: throw failure("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(LuaValueError) {
        let length = word.utf8CodeUnitCount
        guard input.count - position >= length,
            memcmp(input.baseAddress! + position, word.utf8Start, length) == 0
        else { throw failure("invalid literal") }
        position += length
    }

    private mutating func decodeObject(depth: Int) throws(LuaValueError) {
        guard depth <= maxDepth else { throw failure("nesting deeper than \(maxDepth) levels") }
        guard lua_checkstack(thread, 4) != 0 else { throw LuaValueError("Lua stack exhausted") }
        position += 1
        lua_createtable(thread, 0, 0)
        skipWhitespace()
        if position < input.count, current == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            guard position < input.count else { throw failure("unexpected end of input") }
            guard current == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            try decodeString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            try decodeValue(depth: depth)
            lua_rawset(thread, -3)
            skipWhitespace()
            guard position < input.count else { throw failure("unexpected end of input") }
            let next = current
            position += 1
            if next == UInt8(ascii: "}") { return }
            if next != UInt8(ascii: ",") { throw failure("expected ',' or '}'") }
        }
    }

    private mutating func decodeArray(depth: Int) throws(LuaValueError) {
        guard depth <= maxDepth else { throw failure("nesting deeper than \(maxDepth) levels") }
        guard lua_checkstack(thread, 4) != 0 else { throw LuaValueError("Lua stack exhausted") }
        position += 1
        lua_createtable(thread, 0, 0)
        clua_getref(thread, state.arrayMetatableRef)
        lua_setmetatable(thread, -2)
        skipWhitespace()
        if position < input.count, current == UInt8(ascii: "]") {
            position += 1
            return
        }
        var index: lua_Integer = 1
        while true {
            skipWhitespace()
            try decodeValue(depth: depth)
            lua_rawseti(thread, -2, index)
            index += 1
            skipWhitespace()
            guard position < input.count else { throw failure("unexpected end of input") }
            let next = current
            position += 1
            if next == UInt8(ascii: "]") { return }
            if next != UInt8(ascii: ",") { throw failure("expected ',' or ']'") }
        }
    }

    private mutating func decodeString() throws(LuaValueError) {
        position += 1
        let start = position
        var ascii = true
        while position < input.count {
            let byte = input[position]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: input[start..<position])
                if !ascii, !UTF8Validation.isValid(slice) { throw failure("string is not valid UTF-8") }
                clua_pushbytes(thread, slice.baseAddress, slice.count)
                position += 1
                return
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw failure("control character in string") }
            if byte >= 0x80 { ascii = false }
            position += 1
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: input[start..<position])
        try decodeEscapedRest(ascii: ascii)
    }

    private mutating func decodeEscapedRest(ascii: Bool) throws(LuaValueError) {
        var ascii = ascii
        while position < input.count {
            let byte = input[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                if !ascii {
                    let valid = scratch.withUnsafeBytes { UTF8Validation.isValid($0) }
                    if !valid { throw failure("string is not valid UTF-8") }
                }
                scratch.withUnsafeBytes { clua_pushbytes(thread, $0.baseAddress, $0.count) }
                return
            case UInt8(ascii: "\\"):
                guard position < input.count else { throw failure("unexpected end of input") }
                let escape = input[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(escape)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"): try decodeUnicodeEscape()
                default: throw failure("invalid escape")
                }
            default:
                if byte < 0x20 { throw failure("control character in string") }
                if byte >= 0x80 { ascii = false }
                scratch.append(byte)
            }
        }
        throw failure("unterminated string")
    }

    private mutating func hex4() throws(LuaValueError) -> UInt32 {
        guard input.count - position >= 4 else { throw failure("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = input[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func decodeUnicodeEscape() throws(LuaValueError) {
        var scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
            if input.count - position >= 6, input[position] == UInt8(ascii: "\\"), input[position + 1] == UInt8(ascii: "u") {
                let saved = position
                position += 2
                let low = try hex4()
                if (0xDC00...0xDFFF).contains(low) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    position = saved
                    scalar = 0xFFFD
                }
            } else {
                scalar = 0xFFFD
            }
        } else if (0xDC00...0xDFFF).contains(scalar) {
            scalar = 0xFFFD
        }
        UTF8Validation.append(scalar, to: &scratch)
    }

    private mutating func decodeNumber() throws(LuaValueError) {
        let start = position
        let negative = current == UInt8(ascii: "-")
        if negative { position += 1 }
        let digitsStart = position
        var magnitude: UInt64 = 0
        var overflow = false
        while position < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(current) {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(current - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            magnitude = sum
            position += 1
        }
        let digitCount = position - digitsStart
        guard digitCount > 0 else { throw failure("invalid number") }
        if digitCount > 1, input[digitsStart] == UInt8(ascii: "0") { throw failure("leading zero in number") }
        var isFloat = false
        if position < input.count, current == UInt8(ascii: ".") {
            isFloat = true
            position += 1
            let fractionStart = position
            while position < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(current) { position += 1 }
            guard position > fractionStart else { throw failure("invalid number") }
        }
        if position < input.count, current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isFloat = true
            position += 1
            if position < input.count, current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            let exponentStart = position
            while position < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(current) { position += 1 }
            guard position > exponentStart else { throw failure("invalid number") }
        }
        if !isFloat, !overflow {
            if negative, magnitude <= UInt64(Int64.max) + 1 {
                lua_pushinteger(thread, magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
                return
            }
            if !negative, magnitude <= UInt64(Int64.max) {
                lua_pushinteger(thread, Int64(magnitude))
                return
            }
        }
        let length = position - start
        let value = withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { buffer -> Double in
            memcpy(buffer.baseAddress!, input.baseAddress! + start, length)
            buffer[length] = 0
            return strtod(buffer.baseAddress!, nil)
        }
        lua_pushnumber(thread, value)
    }
}
