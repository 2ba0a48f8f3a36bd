import CLua

/// Why a value could not be converted between Lua and Swift or JSON; the message is one line.
public struct LuaValueError: Error, CustomStringConvertible, Sendable {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension LuaState {
    /// Pushes `value` on `thread`. Stack effect: +1 on success, 0 when JSON text does not decode.
    /// Raw sets only, so nothing can raise.
    func push(_ value: LuaValue, on thread: OpaquePointer) throws(LuaValueError) {
        switch value {
        case .nil:
            lua_pushnil(thread)
        case .boolean(let flag):
            lua_pushboolean(thread, flag ? 1 : 0)
        case .integer(let number):
            lua_pushinteger(thread, number)
        case .number(let number):
            lua_pushnumber(thread, number)
        case .string(let bytes):
            bytes.withUnsafeBytes { clua_pushbytes(thread, $0.baseAddress, $0.count) }
        case .null:
            lua_pushlightuserdata(thread, nil)
        case .json(let bytes):
            let top = lua_gettop(thread)
            let failure = bytes.withUnsafeBytes { buffer -> LuaValueError? in
                var decoder = LuaJSONDecoder(state: self, thread: thread, input: buffer, maxDepth: limits.jsonDepth)
                do {
                    try decoder.decode()
                    return nil
                } catch {
                    return error as? LuaValueError ?? LuaValueError("\(error)")
                }
            }
            if let failure {
                lua_settop(thread, top)
                throw failure
            }
        case .table(let array, let fields):
            guard lua_checkstack(thread, 3) != 0 else { throw LuaValueError("Lua stack exhausted") }
            let top = lua_gettop(thread)
            lua_createtable(thread, Int32(array.count), Int32(fields.count))
            do {
                for (offset, element) in array.enumerated() {
                    try push(element, on: thread)
                    lua_rawseti(thread, -2, lua_Integer(offset + 1))
                }
                for (key, element) in fields {
                    try push(.string(key), on: thread)
                    try push(element, on: thread)
                    lua_rawset(thread, -3)
                }
            } catch {
                lua_settop(thread, top)
                throw error
            }
        }
    }

    /// Reads the value at `index` without calling metamethods. Tables become `.table` with their
    /// sequence 1...n and their string keys; other keys are ignored. Functions, threads and userdata
    /// (other than `json.null`) cannot leave Lua. Stack effect: 0.
    func value(at index: Int32, on thread: OpaquePointer, depth: Int) throws(LuaValueError) -> LuaValue {
        var budget = Self.maxValueNodes
        return try value(at: index, on: thread, depth: depth, budget: &budget)
    }

    /// Most values one conversion visits: shared subtables make a small Lua table an exponential tree.
    static let maxValueNodes = 100_000

    private func value(at index: Int32, on thread: OpaquePointer, depth: Int, budget: inout Int) throws(LuaValueError) -> LuaValue {
        budget -= 1
        guard budget >= 0 else { throw LuaValueError("value has more than \(Self.maxValueNodes) parts") }
        switch lua_type(thread, index) {
        case LUA_TNONE, LUA_TNIL:
            return .nil
        case LUA_TBOOLEAN:
            return .boolean(lua_toboolean(thread, index) != 0)
        case LUA_TNUMBER:
            return clua_isinteger(thread, index) != 0 ? .integer(clua_tointeger(thread, index)) : .number(clua_tonumber(thread, index))
        case LUA_TSTRING:
            var length = 0
            let pointer = clua_tostring_raw(thread, index, &length)!
            return .string(Array(UnsafeRawBufferPointer(start: pointer, count: length)))
        case LUA_TLIGHTUSERDATA where lua_touserdata(thread, index) == nil:
            return .null
        case LUA_TTABLE:
            guard depth > 0 else { throw LuaValueError("table nested too deeply (more than \(limits.jsonDepth) levels)") }
            guard lua_checkstack(thread, 3) != 0 else { throw LuaValueError("Lua stack exhausted") }
            let table = lua_absindex(thread, index)
            let length = Int(lua_rawlen(thread, table))
            var array: [LuaValue] = []
            // Not `length`: a table whose border lies in its hash part can report 2^62 for a few
            // elements; the loop stops at the first nil, and the budget bounds it anyway.
            array.reserveCapacity(min(length, max(budget, 0)))
            for position in 0..<length {
                lua_rawgeti(thread, table, lua_Integer(position + 1))
                defer { clua_pop(thread, 1) }
                let element = try value(at: -1, on: thread, depth: depth - 1, budget: &budget)
                if element == .nil { break }
                array.append(element)
            }
            var fields: [String: LuaValue] = [:]
            lua_pushnil(thread)
            while lua_next(thread, table) != 0 {
                if lua_type(thread, -2) == LUA_TSTRING, let key = string(at: -2, on: thread) {
                    do {
                        fields[key] = try value(at: -1, on: thread, depth: depth - 1, budget: &budget)
                    } catch {
                        clua_pop(thread, 2)
                        throw error
                    }
                }
                clua_pop(thread, 1)
            }
            return .table(array: array, fields: fields)
        default:
            throw LuaValueError("a \(String(cString: clua_typename(thread, index))) value cannot leave Lua")
        }
    }
}
