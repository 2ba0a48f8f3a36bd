import CLua

/// One call from Lua into a host function: typed access to the arguments and a place to push results.
///
/// Argument indices are 1-based as in Lua. Reading never calls metamethods. Every accessor throws
/// `LuaHostError` with a message naming the function and argument, the same shape as Lua's own
/// `bad argument #1 to 'x'` errors.
public struct LuaCall {
    /// Async work a host function hands to its worker. It gets the invocation's deadline and must
    /// return before it (host calls such as HTTP pass it on as their own timeout).
    public typealias Operation = @Sendable (_ deadline: ContinuousClock.Instant) async throws -> [LuaValue]

    public enum Result {
        /// The function pushed this many results.
        case values(Int)
        /// The coroutine waits for `operation`; its results (or its error) are what the Lua call returns.
        case suspend(Operation)
    }

    let thread: OpaquePointer
    let state: LuaState
    /// `library.function`, for messages.
    public let functionName: String
    /// How many arguments Lua passed.
    public let argumentCount: Int

    init(thread: OpaquePointer, state: LuaState, functionName: String) {
        self.thread = thread
        self.state = state
        self.functionName = functionName
        self.argumentCount = Int(lua_gettop(thread))
    }

    /// What the invoker said about the running invocation (nil while a handler's file is loading).
    public var invocation: LuaInvocationInfo? { state.running?.info }

    /// The limits of the state.
    public var limits: LuaLimits { state.limits }

    private func bad(_ index: Int, _ expected: String) -> LuaHostError {
        let actual = index > argumentCount ? "no value" : String(cString: clua_typename(thread, Int32(index)))
        return LuaHostError("bad argument #\(index) to '\(functionName)' (\(expected) expected, got \(actual))")
    }

    /// Whether argument `index` is absent or nil.
    public func isNil(_ index: Int) -> Bool {
        index > argumentCount || lua_type(thread, Int32(index)) <= LUA_TNIL
    }

    /// Counts work the host function does in proportion to its input against the invocation's
    /// instruction budget, as the bounded library functions do (one unit per 64 bytes). Past the
    /// budget the call ends with the limit error once the function has returned.
    public func charge(bytes count: Int) {
        _ = clua_note_work(state.context, UInt64(max(0, count)) / 64)
    }

    /// A string argument's bytes. Reading it is charged: what the host does with it is linear in it.
    public func bytes(_ index: Int) throws -> [UInt8] {
        var length = 0
        guard index <= argumentCount, let pointer = clua_tostring_raw(thread, Int32(index), &length) else {
            throw bad(index, "string")
        }
        charge(bytes: length)
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// A string argument as text (invalid UTF-8 replaced), charged as `bytes` is.
    public func string(_ index: Int) throws -> String {
        var length = 0
        guard index <= argumentCount, let pointer = clua_tostring_raw(thread, Int32(index), &length) else {
            throw bad(index, "string")
        }
        charge(bytes: length)
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    public func integer(_ index: Int) throws -> Int64 {
        guard index <= argumentCount, lua_type(thread, Int32(index)) == LUA_TNUMBER else { throw bad(index, "number") }
        var isInteger: Int32 = 0
        let value = lua_tointegerx(thread, Int32(index), &isInteger)
        guard isInteger != 0 else { throw LuaHostError("bad argument #\(index) to '\(functionName)' (number has no integer representation)") }
        return value
    }

    public func number(_ index: Int) throws -> Double {
        guard index <= argumentCount, lua_type(thread, Int32(index)) == LUA_TNUMBER else { throw bad(index, "number") }
        return clua_tonumber(thread, Int32(index))
    }

    /// Argument `index` as a `LuaValue` (tables converted raw, depth-capped).
    public func value(_ index: Int) throws -> LuaValue {
        guard index <= argumentCount else { return .nil }
        do {
            return try state.value(at: Int32(index), on: thread, depth: state.limits.jsonDepth)
        } catch {
            throw LuaHostError("bad argument #\(index) to '\(functionName)' (\(error.message))")
        }
    }

    /// Argument `index` as JSON text, encoded by the host's encoder.
    public func json(_ index: Int) throws -> [UInt8] {
        guard index <= argumentCount else { throw bad(index, "value") }
        do {
            var encoder = LuaJSONEncoder(state: state, thread: thread, maxDepth: state.limits.jsonDepth)
            let bytes = try encoder.encode(at: Int32(index))
            charge(bytes: bytes.count)
            return bytes
        } catch {
            throw LuaHostError("\(functionName): \(error.message)")
        }
    }

    /// Pushes a result. Call once per result, then return `.values(count)` (or use `returning`).
    public mutating func push(_ value: LuaValue) throws {
        guard lua_checkstack(thread, 1) != 0 else { throw LuaHostError("\(functionName): too many results") }
        do {
            try state.push(value, on: thread)
        } catch {
            throw LuaHostError("\(functionName): \(error)")
        }
    }

    /// Decodes JSON text straight onto the Lua stack as one result.
    public mutating func pushJSON(_ bytes: [UInt8]) throws {
        do {
            try bytes.withUnsafeBytes { buffer in
                var decoder = LuaJSONDecoder(state: state, thread: thread, input: buffer, maxDepth: state.limits.jsonDepth)
                try decoder.decode()
            }
        } catch {
            throw LuaHostError("\(functionName): \(error)")
        }
    }

    /// Pushes `values` and returns `.values(values.count)`.
    public mutating func returning(_ values: LuaValue...) throws -> Result {
        for value in values { try push(value) }
        return .values(values.count)
    }
}
