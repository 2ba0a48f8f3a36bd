import CLua

/// Encodes a Lua value as compact JSON text, reading tables raw (no metamethod ever runs).
///
/// A table is an array when it carries the `json.array` metatable or when its keys are exactly
/// 1...n (n > 0); otherwise an object with its keys sorted, so output is deterministic. Empty tables
/// are `{}` unless marked with `json.array`. NaN, infinities, invalid UTF-8, functions and cycles
/// (caught by the depth cap) are errors.
struct LuaJSONEncoder {
    private let state: LuaState
    private let thread: OpaquePointer
    private let maxDepth: Int
    private var output: [UInt8] = []
    /// Values visited so far. A table that holds the same subtable twice at every level is small
    /// in Lua and exponential as JSON: the node and byte caps stop that work, which no hook sees.
    private var nodes = 0
    static let maxNodes = 1_000_000
    static let maxBytes = 16 << 20

    init(state: LuaState, thread: OpaquePointer, maxDepth: Int) {
        self.state = state
        self.thread = thread
        self.maxDepth = maxDepth
    }

    /// Encodes the value at `index`. Stack effect: 0.
    mutating func encode(at index: Int32) throws(LuaValueError) -> [UInt8] {
        output.reserveCapacity(256)
        try encodeValue(lua_absindex(thread, index), depth: 0)
        return output
    }

    private mutating func append(_ text: StaticString) {
        output.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private mutating func encodeValue(_ index: Int32, depth: Int) throws(LuaValueError) {
        nodes += 1
        if nodes > Self.maxNodes { throw LuaValueError("cannot encode more than \(Self.maxNodes) values as JSON") }
        if output.count > Self.maxBytes { throw LuaValueError("cannot encode more than \(Self.maxBytes) bytes of JSON") }
        switch lua_type(thread, index) {
        case LUA_TNIL:
            append("null")
        case LUA_TBOOLEAN:
            lua_toboolean(thread, index) != 0 ? append("true") : append("false")
        case LUA_TNUMBER:
            if clua_isinteger(thread, index) != 0 {
                output.append(contentsOf: String(clua_tointeger(thread, index)).utf8)
            } else {
                let number = clua_tonumber(thread, index)
                guard number.isFinite else { throw LuaValueError("cannot encode \(number) as JSON") }
                output.append(contentsOf: number.description.utf8)
            }
        case LUA_TSTRING:
            var length = 0
            let pointer = clua_tostring_raw(thread, index, &length)!
            try appendString(UnsafeRawBufferPointer(start: pointer, count: length))
        case LUA_TLIGHTUSERDATA where lua_touserdata(thread, index) == nil:
            append("null")
        case LUA_TTABLE:
            guard depth < maxDepth else { throw LuaValueError("cannot encode a table nested deeper than \(maxDepth) levels (a cycle?)") }
            guard lua_checkstack(thread, 4) != 0 else { throw LuaValueError("Lua stack exhausted") }
            if let length = arrayLength(index) {
                try encodeArray(index, length: length, depth: depth)
            } else {
                try encodeObject(index, depth: depth)
            }
        default:
            throw LuaValueError("cannot encode a \(String(cString: clua_typename(thread, index))) value as JSON")
        }
    }

    /// The array length if the table at `index` is to be encoded as an array. Stack effect: 0.
    private func arrayLength(_ index: Int32) -> Int? {
        if lua_getmetatable(thread, index) != 0 {
            clua_getref(thread, state.arrayMetatableRef)
            let marked = lua_rawequal(thread, -1, -2) != 0
            clua_pop(thread, 2)
            if marked { return Int(lua_rawlen(thread, index)) }
        }
        var count = 0
        var maxKey: lua_Integer = 0
        lua_pushnil(thread)
        while lua_next(thread, index) != 0 {
            clua_pop(thread, 1)
            guard clua_isinteger(thread, -1) != 0, case let key = clua_tointeger(thread, -1), key > 0 else {
                clua_pop(thread, 1)
                return nil
            }
            count += 1
            maxKey = max(maxKey, key)
        }
        return count > 0 && maxKey == count ? count : nil
    }

    private mutating func encodeArray(_ index: Int32, length: Int, depth: Int) throws(LuaValueError) {
        output.append(UInt8(ascii: "["))
        for position in 0..<length {
            if position > 0 { output.append(UInt8(ascii: ",")) }
            lua_rawgeti(thread, index, lua_Integer(position + 1))
            defer { clua_pop(thread, 1) }
            try encodeValue(lua_gettop(thread), depth: depth + 1)
        }
        output.append(UInt8(ascii: "]"))
    }

    private enum Key {
        case string([UInt8])
        case integer(lua_Integer, [UInt8])
        var bytes: [UInt8] {
            switch self {
            case .string(let bytes), .integer(_, let bytes): bytes
            }
        }
    }

    private mutating func encodeObject(_ index: Int32, depth: Int) throws(LuaValueError) {
        var keys: [Key] = []
        lua_pushnil(thread)
        while lua_next(thread, index) != 0 {
            clua_pop(thread, 1)
            switch lua_type(thread, -1) {
            case LUA_TSTRING:
                var length = 0
                let pointer = clua_tostring_raw(thread, -1, &length)!
                keys.append(.string(Array(UnsafeRawBufferPointer(start: pointer, count: length))))
            case LUA_TNUMBER where clua_isinteger(thread, -1) != 0:
                let key = clua_tointeger(thread, -1)
                keys.append(.integer(key, Array(String(key).utf8)))
            default:
                let type = String(cString: clua_typename(thread, -1))
                clua_pop(thread, 1)
                throw LuaValueError("cannot encode a table with \(type) keys as JSON")
            }
        }
        keys.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        output.append(UInt8(ascii: "{"))
        for (position, key) in keys.enumerated() {
            if position > 0 { output.append(UInt8(ascii: ",")) }
            let bytes = key.bytes
            try appendString(bytes)
            output.append(UInt8(ascii: ":"))
            switch key {
            case .string(let bytes): bytes.withUnsafeBytes { clua_pushbytes(thread, $0.baseAddress, $0.count) }
            case .integer(let integer, _): lua_pushinteger(thread, integer)
            }
            lua_rawget(thread, index)
            defer { clua_pop(thread, 1) }
            try encodeValue(lua_gettop(thread), depth: depth + 1)
        }
        output.append(UInt8(ascii: "}"))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func appendString(_ bytes: [UInt8]) throws(LuaValueError) {
        let valid = bytes.withUnsafeBytes { UTF8Validation.isValid($0) }
        guard valid else { throw LuaValueError("cannot encode a string that is not valid UTF-8 as JSON (base64 it first)") }
        output.append(UInt8(ascii: "\""))
        for byte in bytes { appendEscaped(byte) }
        output.append(UInt8(ascii: "\""))
    }

    private mutating func appendString(_ bytes: UnsafeRawBufferPointer) throws(LuaValueError) {
        guard UTF8Validation.isValid(bytes) else {
            throw LuaValueError("cannot encode a string that is not valid UTF-8 as JSON (base64 it first)")
        }
        output.append(UInt8(ascii: "\""))
        for byte in bytes { appendEscaped(byte) }
        output.append(UInt8(ascii: "\""))
    }

    private mutating func appendEscaped(_ byte: UInt8) {
            switch byte {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0x08: append("\\b")
            case 0x0C: append("\\f")
            case 0..<0x20:
                append("\\u00")
                output.append(Self.hexDigits[Int(byte >> 4)])
                output.append(Self.hexDigits[Int(byte & 0x0F)])
            default:
                output.append(byte)
            }
    }
}
