import CLua

/// One `lua_State` with its sandbox, host functions and limits.
///
/// Threading: not thread-safe. A state is created by a `LuaWorker` and from then on touched only on
/// that worker's executor; it never leaves the worker.
///
/// Error discipline: Swift enters Lua only through `lua_resume`/`lua_pcall`, and otherwise calls API
/// functions that cannot raise given how they are used here (raw access only, no metamethods, keys
/// never nil or NaN). Allocations made while Swift is on the stack are not refused by the memory cap
/// (`enforce_memory` is off), so no memory error can unwind through a Swift frame either.
final class LuaState {
    let L: OpaquePointer
    let context: UnsafeMutablePointer<clua_context>
    let limits: LuaLimits
    private(set) var hostFunctions: [(name: String, availability: LuaHostFunction.Availability, body: LuaHostFunction.Body)] = []
    /// Registry reference to the sandbox's `make_env`.
    private var makeEnvironmentRef: Int32 = 0
    /// Registry reference to the metatable that marks decoded JSON arrays.
    private(set) var arrayMetatableRef: Int32 = 0
    /// Registry reference to the weak-keyed set of invocation coroutines, which scripts may not resume.
    private(set) var invocationsRef: Int32 = 0

    /// The coroutine of the invocation being resumed, and what it may see of its host.
    var running: (thread: OpaquePointer, info: LuaInvocationInfo)?
    /// The operation a host function asked to await when it returned `.suspend`.
    var pendingOperation: LuaCall.Operation?

    init(libraries: [LuaLibrary], limits: LuaLimits) throws(LuaError) {
        self.limits = limits
        context = .allocate(capacity: 1)
        context.initialize(to: clua_context())
        context.pointee.memory_limit = limits.memoryBytes > 0 ? Int(limits.memoryBytes) : 0
        context.pointee.hook_interval = limits.hookInterval
        context.pointee.pattern_step_limit = limits.patternSteps
        context.pointee.max_string_bytes = max(0, limits.maxStringBytes)
        context.pointee.max_elements = Int64(max(0, limits.maxMoveElements))
        context.pointee.max_call_work = UInt64(max(0, limits.maxCallWork))
        context.pointee.instructions_left = limits.instructions
        guard let state = clua_newstate(context) else {
            context.deallocate()
            throw LuaError(.memory, "cannot create a Lua state")
        }
        L = state
        context.pointee.dispatch = luaDispatch
        context.pointee.host = Unmanaged.passUnretained(self).toOpaque()
        luaL_openlibs(L)
        clua_install_bounded_library(L)
        clua_sethook(L)
        try installSandbox(libraries: [LuaJSONLibrary.library(depth: limits.jsonDepth)] + libraries)
    }

    deinit {
        lua_close(L)
        context.deallocate()
    }

    /// Bytes the state currently holds.
    var memoryUsed: Int { Int(context.pointee.memory_used) }

    private func installSandbox(libraries: [LuaLibrary]) throws(LuaError) {
        lua_createtable(L, 0, 1)
        arrayMetatableRef = clua_ref(L)
        clua_getref(L, arrayMetatableRef)
        lua_pushstring(L, "json.array")
        lua_setfield(L, -2, "__metatable")
        clua_pop(L, 1)

        lua_createtable(L, 0, 0)  // invocation coroutines, weak keys
        lua_createtable(L, 0, 1)
        lua_pushstring(L, "k")
        lua_setfield(L, -2, "__mode")
        lua_setmetatable(L, -2)
        invocationsRef = clua_ref(L)
        clua_getref(L, invocationsRef)
        clua_install_coroutine_guards(L)

        lua_createtable(L, 0, 2)  // internals
        clua_push_charge_function(L)
        lua_setfield(L, -2, "charge")
        lua_createtable(L, 0, Int32(libraries.count))
        for library in libraries {
            lua_createtable(L, 0, Int32(library.functions.count + library.values.count))
            for (name, availability, body) in library.functions {
                hostFunctions.append((name: library.fullName(of: name), availability: availability, body: body))
                clua_push_hostfunction(L, Int32(hostFunctions.count - 1))
                lua_setfield(L, -2, name)
            }
            for (name, value) in library.values {
                do {
                    try push(value, on: L)
                } catch {
                    throw LuaError(.runtime, "library \(library.name): \(error)")
                }
                lua_setfield(L, -2, name)
            }
            if let setup = library.setup {
                let status = load(setup, chunkName: "=\(library.name).setup")
                guard status == LUA_OK else { throw popError(status, on: L) }
                lua_pushvalue(L, -2)  // the library
                lua_pushvalue(L, -4)  // every library built so far (json comes first)
                let callStatus = withEnforcedLimits { clua_pcall(L, 2, 0, 0) }
                guard callStatus == LUA_OK else { throw popError(callStatus, on: L) }
            }
            lua_setfield(L, -2, library.name)
        }
        lua_setfield(L, -2, "host")

        let status = load(LuaSandbox.source, chunkName: LuaSandbox.chunkName)
        guard status == LUA_OK else { throw popError(status, on: L) }
        clua_insert(L, -2)
        let callStatus = withEnforcedLimits { clua_pcall(L, 1, 1, 0) }
        guard callStatus == LUA_OK else { throw popError(callStatus, on: L) }
        makeEnvironmentRef = clua_ref(L)
    }

    /// Runs `body` with the memory cap enforced and a fresh instruction budget, as Lua code is about to run.
    func withEnforcedLimits<T>(_ body: () -> T) -> T {
        let before = context.pointee.enforce_memory
        context.pointee.enforce_memory = 1
        defer { context.pointee.enforce_memory = before }
        return body()
    }

    /// Compiles `source` (text only) and pushes the chunk, or the error message. Stack effect: +1.
    func load(_ source: String, chunkName: String) -> Int32 {
        var source = source
        return source.withUTF8 { load(bytes: UnsafeRawBufferPointer($0), chunkName: chunkName) }
    }

    func load(bytes: UnsafeRawBufferPointer, chunkName: String) -> Int32 {
        // A fresh budget: the allocator refuses everything once an invocation is over its own.
        context.pointee.kill_reason = CLUA_KILL_NONE
        context.pointee.instructions_left = limits.instructions
        return withEnforcedLimits {
            clua_loadbuffer(L, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, chunkName)
        }
    }

    /// Pushes a new sandbox environment on `L`'s stack. Stack effect: +1.
    /// - Parameter extras: read-only tables to add as globals (a source's secrets).
    func pushNewEnvironment(extras: [String: LuaValue] = [:]) throws(LuaError) {
        clua_getref(L, makeEnvironmentRef)
        do {
            try push(.table(array: [], fields: extras), on: L)
        } catch {
            clua_pop(L, 1)
            throw LuaError(.invalidHandler, "cannot pass \(extras.keys.sorted()) to the handler: \(error)")
        }
        context.pointee.instructions_left = limits.instructions
        context.pointee.kill_reason = CLUA_KILL_NONE
        context.pointee.deadline = 0
        let status = withEnforcedLimits { clua_pcall(L, 1, 1, 0) }
        guard status == LUA_OK else { throw popError(status, on: L) }
    }

    /// Pops the error value at the top of `thread` and turns it into a `LuaError`. Never calls
    /// `__tostring`: an error object is described, not converted. Stack effect: -1.
    func popError(_ status: Int32, on thread: OpaquePointer) -> LuaError {
        defer { clua_pop(thread, 1) }
        let message: String
        if let text = string(at: -1, on: thread) {
            message = text
        } else {
            message = "(error object is a \(String(cString: clua_typename(thread, -1))) value)"
        }
        switch status {
        case LUA_ERRSYNTAX: return LuaError(.syntax, message)
        case LUA_ERRMEM: return LuaError(.memory, "memory limit exceeded (\(limits.memoryBytes >> 20) MiB)")
        default:
            if message.hasSuffix("memory limit exceeded") || message == "not enough memory" {
                return LuaError(.memory, "memory limit exceeded (\(limits.memoryBytes >> 20) MiB)")
            }
            return LuaError(.runtime, message)
        }
    }

    /// The string at `index`, if the value is a string (numbers are not converted). Stack effect: 0.
    func string(at index: Int32, on thread: OpaquePointer) -> String? {
        var length = 0
        guard let pointer = clua_tostring_raw(thread, index, &length) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// Calls the host function `id` for a Lua call on `thread`; see `CLUA_HOST_*` for the protocol.
    fileprivate func dispatch(_ thread: OpaquePointer, _ id: Int) -> Int32 {
        let function = hostFunctions[id]
        var call = LuaCall(thread: thread, state: self, functionName: function.name)
        do {
            if function.availability == .insideCall, running?.info.isLoading ?? true {
                throw LuaHostError("\(function.name) is available inside a handler call, not while its file loads")
            }
            switch try function.body(&call) {
            case .values(let count):
                return Int32(count)
            case .suspend(let operation):
                guard let running, running.thread == thread else {
                    throw LuaHostError("\(call.functionName) waits for I/O and cannot run inside a coroutine created by the handler")
                }
                guard lua_isyieldable(thread) != 0 else {
                    throw LuaHostError("\(call.functionName) waits for I/O and cannot run inside a metamethod or library callback")
                }
                pendingOperation = operation
                return CLUA_HOST_YIELD
            }
        } catch let error as LuaHostError {
            pushMessage(error.message, on: thread)
        } catch {
            pushMessage("\(error)", on: thread)
        }
        return CLUA_HOST_ERROR
    }

    /// Pushes `where: message`, `where` being the handler's `file:line:` that made the call (host
    /// wrappers written in Lua and C frames in between are skipped). Stack effect: +1.
    func pushMessage(_ message: String, on thread: OpaquePointer) {
        clua_where_handler(thread, 1)
        if lua_rawlen(thread, -1) == 0, let path = running?.info.handlerPath {
            // The handler's frame is gone (it tail-called): name the file at least.
            clua_pop(thread, 1)
            lua_pushstring(thread, path + ": ")
        }
        lua_pushstring(thread, message)
        lua_concat(thread, 2)
    }
}

/// The C-callable entry of every host function: finds the `LuaState` through the context and dispatches.
private let luaDispatch: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32) -> Int32 = { thread, host, id in
    let state = Unmanaged<LuaState>.fromOpaque(host!).takeUnretainedValue()
    return state.dispatch(thread!, Int(id))
}
