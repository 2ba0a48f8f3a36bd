import CLua

/// `json.encode`, `json.decode`, `json.null` and `json.array` for handlers, on the host's codec.
public enum LuaJSONLibrary {
    public static func library(depth: Int = LuaLimits().jsonDepth) -> LuaLibrary {
        var json = LuaLibrary(name: "json")
        json.value("null", .null, "lightuserdata", "JSON null: what json.decode gives for null, and how to write one")
        json.function("encode", "fun(value: any): string", "JSON text of a value; a table is an array if marked or keyed 1..n, else an object with sorted keys") { call in
            let bytes = try call.json(1)
            return try call.returning(.string(bytes))
        }
        json.function("decode", "fun(text: string): any", "The value of JSON text; integers stay integers, null is json.null") { call in
            let text = try call.bytes(1)
            try call.pushJSON(text)
            return .values(1)
        }
        json.function("array", "fun(t: table): table", "Marks t as an array (so {} encodes as []) and returns it") { call in
            try call.markArray(1)
            return .values(1)
        }
        return json
    }
}

extension LuaCall {
    /// Gives the table argument `index` the `json.array` metatable and pushes it.
    mutating func markArray(_ index: Int) throws {
        guard index <= argumentCount, lua_type(thread, Int32(index)) == LUA_TTABLE else {
            throw LuaHostError("bad argument #\(index) to '\(functionName)' (table expected)")
        }
        if lua_getmetatable(thread, Int32(index)) != 0 {
            clua_getref(thread, state.arrayMetatableRef)
            let isArray = lua_rawequal(thread, -1, -2) != 0
            clua_pop(thread, 2)
            guard isArray else { throw LuaHostError("\(functionName): the table already has a metatable") }
        }
        clua_getref(thread, state.arrayMetatableRef)
        lua_setmetatable(thread, Int32(index))
        lua_pushvalue(thread, Int32(index))
    }
}
