import CLua
import Logging

/// An actor owning one sandboxed `lua_State` and every handler loaded into it.
///
/// Each invocation runs as its own coroutine. When a host function suspends (`LuaCall.Result.suspend`),
/// the coroutine yields, the worker awaits the operation and resumes the coroutine with its result.
/// Because actor methods re-enter at `await`, one state serves many suspended invocations at once and
/// no thread ever blocks. The actor runs on its own thread (`LuaThreadExecutor`) with a known stack.
///
/// ```swift
/// let worker = try LuaWorker(libraries: [TimeLibrary.library()], limits: LuaLimits())
/// let handler = try await worker.load(path: "induced/browser_ready.lua", source: bytes)
/// let outcome = await worker.invoke(handler, arguments: [.json(body)], info: .init(handlerPath: handler.path))
/// ```
public actor LuaWorker {
    private let executor: LuaThreadExecutor
    private let state: LuaState
    private var handlers: [Int: Int32] = [:]
    private var nextHandlerID = 0

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// - Parameters:
    ///   - libraries: host libraries every handler gets (`json` is always added).
    ///   - limits: memory, instruction, time and C-side caps.
    ///   - stackSize: C stack of the worker's thread.
    public init(libraries: [LuaLibrary], limits: LuaLimits = LuaLimits(), name: String = "lua-worker", stackSize: Int = 16 << 20)
        throws(LuaError)
    {
        executor = LuaThreadExecutor(name: name, stackSize: stackSize)
        do {
            state = try LuaState(libraries: libraries, limits: limits)
        } catch {
            executor.stop()
            throw error
        }
    }

    /// Lets the worker's thread end once queued work is done. Work that still arrives afterwards
    /// runs all the same, on a thread started for it, so nothing awaiting the worker hangs.
    public nonisolated func shutdown() {
        executor.stop()
    }

    /// Bytes the state holds now.
    public var memoryUsed: Int { state.memoryUsed }

    /// Runs a full garbage collection and returns the bytes the state holds afterwards.
    @discardableResult
    public func collectGarbage() -> Int {
        clua_collectgarbage(state.L)
        return state.memoryUsed
    }

    /// Number of loaded handlers.
    public var handlerCount: Int { handlers.count }

    /// Compiles `source` in a fresh sandbox environment, runs its top level under the invocation
    /// limits and keeps the function it returns.
    /// - Parameters:
    ///   - path: the file's path relative to the handlers folder, used as the chunk name.
    ///   - extras: read-only tables the handler sees as globals, such as its source's `secrets`.
    public func load(path: String, source: [UInt8], extras: [String: LuaValue] = [:]) async throws(LuaError) -> LuaHandler {
        let L = state.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        let resultRef = try await runTopLevel(path: path, source: source, extras: extras, prelude: nil)
        defer { clua_unref(L, resultRef) }

        clua_getref(L, resultRef)
        let options: LuaHandlerOptions
        switch lua_type(L, -1) {
        case LUA_TFUNCTION:
            options = LuaHandlerOptions()
        case LUA_TTABLE:
            options = try readOptions(path: path)
            lua_pushstring(L, "handle")
            lua_rawget(L, -2)
            guard lua_type(L, -1) == LUA_TFUNCTION else {
                throw LuaError(.invalidHandler, "\(path): the returned table has no 'handle' function")
            }
            clua_remove(L, -2)
        default:
            throw LuaError(.invalidHandler, "\(path): a handler must return a function or a table with a 'handle' function")
        }
        let handleRef = clua_ref(L)
        nextHandlerID += 1
        handlers[nextHandlerID] = handleRef
        return LuaHandler(id: nextHandlerID, path: path, options: options)
    }

    /// Loads a file that is not a handler, such as a handler test: its top level runs like a
    /// handler's, in a fresh sandbox environment, and may return any value. `driver` (trusted Lua,
    /// compiled outside the sandbox) receives that value and returns the function kept as the
    /// returned handler, to be invoked like any other. `prelude` (trusted Lua) receives the file's
    /// environment before the top level runs, to add globals that only this file sees.
    public func loadModule(path: String, source: [UInt8], extras: [String: LuaValue] = [:], prelude: String? = nil, driver: String) async throws(LuaError)
        -> LuaHandler
    {
        let L = state.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        let resultRef = try await runTopLevel(path: path, source: source, extras: extras, prelude: prelude)
        defer { clua_unref(L, resultRef) }
        let status = state.load(driver, chunkName: "=moonhook.driver")
        guard status == LUA_OK else { throw state.popError(status, on: L) }
        clua_getref(L, resultRef)
        let callStatus = state.withEnforcedLimits { clua_pcall(L, 1, 1, 0) }
        guard callStatus == LUA_OK else { throw state.popError(callStatus, on: L) }
        guard lua_type(L, -1) == LUA_TFUNCTION else { throw LuaError(.invalidHandler, "\(path): the driver returned no function") }
        nextHandlerID += 1
        handlers[nextHandlerID] = clua_ref(L)
        return LuaHandler(id: nextHandlerID, path: path, options: LuaHandlerOptions())
    }

    /// Compiles `source` in a fresh sandbox environment (given to `prelude` first, when there is
    /// one), runs its top level under the invocation limits and returns a registry reference to
    /// the first value it returned. Stack effect: 0.
    private func runTopLevel(path: String, source: [UInt8], extras: [String: LuaValue], prelude: String?) async throws(LuaError) -> Int32 {
        let L = state.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        let status = source.withUnsafeBytes { state.load(bytes: $0, chunkName: "@" + path) }
        guard status == LUA_OK else { throw state.popError(status, on: L) }
        try state.pushNewEnvironment(extras: extras)
        if let prelude {
            let preludeStatus = state.load(prelude, chunkName: "=moonhook.prelude")
            guard preludeStatus == LUA_OK else { throw state.popError(preludeStatus, on: L) }
            lua_pushvalue(L, -2)
            let callStatus = state.withEnforcedLimits { clua_pcall(L, 1, 0, 0) }
            guard callStatus == LUA_OK else { throw state.popError(callStatus, on: L) }
        }
        guard lua_setupvalue(L, -2, 1) != nil else { throw LuaError(.invalidHandler, "\(path): chunk has no _ENV") }
        let functionRef = clua_ref(L)
        defer { clua_unref(L, functionRef) }
        let outcome = await run(functionRef: functionRef, arguments: [], info: LuaInvocationInfo(handlerPath: path, isLoading: true), timeout: nil, keepResultRef: true)
        guard case .success(let ref) = outcome.result else { throw outcome.error! }
        return ref
    }

    /// Reads `on`, `timeout`, `retries`, `retry_delay` and `concurrency` from the table on top of
    /// the stack, raw; any other entry is refused (a misspelt option would otherwise be ignored
    /// without a word). Stack effect: 0.
    private func readOptions(path: String) throws(LuaError) -> LuaHandlerOptions {
        try refuseUnknownOptions(path: path)
        func field(_ name: String) throws(LuaError) -> LuaValue {
            let L = state.L
            lua_pushstring(L, name)
            lua_rawget(L, -2)
            defer { clua_pop(L, 1) }
            do {
                return try state.value(at: -1, on: L, depth: 2)
            } catch {
                throw LuaError(.invalidHandler, "\(path): option '\(name)': \(error)")
            }
        }
        var options = LuaHandlerOptions()
        switch try field("on") {
        case .nil: break
        case .string(let bytes): options.on = [String(decoding: bytes, as: UTF8.self)]
        case .table(let array, let fields) where fields.isEmpty:
            options.on = try array.map { (value) throws(LuaError) -> String in
                guard let text = value.text else { throw LuaError(.invalidHandler, "\(path): 'on' must list strings") }
                return text
            }
        default: throw LuaError(.invalidHandler, "\(path): 'on' must be a string or a list of strings")
        }
        func seconds(_ name: String, atMost maximum: Int64) throws(LuaError) -> Duration? {
            let value = try field(name)
            if value == .nil { return nil }
            guard let duration = value.positiveSeconds(atMost: maximum) else {
                throw LuaError(.invalidHandler, "\(path): '\(name)' must be a positive number of seconds, at most \(maximum)")
            }
            return duration
        }
        options.timeout = try seconds("timeout", atMost: LuaHandlerOptions.maxTimeoutSeconds)
        switch try field("retries") {
        case .nil: break
        case .integer(let count) where (0...LuaHandlerOptions.maxRetries).contains(count): options.retries = Int(count)
        default: throw LuaError(.invalidHandler, "\(path): 'retries' must be a whole number from 0 to \(LuaHandlerOptions.maxRetries)")
        }
        options.retryDelay = try seconds("retry_delay", atMost: LuaHandlerOptions.maxRetryDelaySeconds)
        switch try field("concurrency") {
        case .nil: break
        case .integer(let count) where (1...LuaHandlerOptions.maxConcurrency).contains(count): options.concurrency = Int(count)
        default: throw LuaError(.invalidHandler, "\(path): 'concurrency' must be a whole number from 1 to \(LuaHandlerOptions.maxConcurrency)")
        }
        switch try field("serial") {
        case .nil: break
        case let value where !(value.text ?? "").isEmpty: options.serial = value.text
        default: throw LuaError(.invalidHandler, "\(path): 'serial' must name where the key is: a JSON pointer (/payload/taskId), header:NAME or form:NAME")
        }
        switch try field("serial_failure") {
        case .nil: break
        case let value:
            guard let mode = value.text.flatMap(LuaHandlerOptions.SerialFailure.init(rawValue:)) else {
                throw LuaError(.invalidHandler, "\(path): 'serial_failure' must be \"block\" or \"skip\"")
            }
            guard options.serial != nil else { throw LuaError(.invalidHandler, "\(path): 'serial_failure' goes with 'serial'") }
            options.serialFailure = mode
        }
        switch try field("max_rate") {
        case .nil: break
        case let value where !(value.text ?? "").isEmpty: options.maxRate = value.text
        default: throw LuaError(.invalidHandler, "\(path): 'max_rate' must be a rate such as \"10/s\", \"600/m\" or \"20/h\"")
        }
        return options
    }

    /// Throws for the first entry of the table on top of the stack that is not a known option
    /// (`LuaHandlerOptions.names`). Stack effect: 0.
    private func refuseUnknownOptions(path: String) throws(LuaError) {
        let L = state.L
        lua_pushnil(L)
        while lua_next(L, -2) != 0 {
            let key = lua_type(L, -2) == LUA_TSTRING ? state.string(at: -2, on: L) : nil
            clua_pop(L, 1)
            guard let key, LuaHandlerOptions.names.contains(key) else {
                clua_pop(L, 1)
                throw LuaError(.invalidHandler, LuaHandlerOptions.unknownOptionMessage(path: path, key: key))
            }
        }
    }

    /// Releases a handler; invocations already running keep their own reference to the function.
    public func unload(_ handler: LuaHandler) {
        if let ref = handlers.removeValue(forKey: handler.id) { clua_unref(state.L, ref) }
    }

    /// Runs `handler` with `arguments` as a new coroutine and waits for it to end.
    /// A limit hit or an error fails only this invocation; the state keeps serving the others.
    /// `timeout` replaces the handler's wall-clock limit, for a caller that already spent part of
    /// it (a synchronous delivery that waited for a slot passes what is left).
    public func invoke(_ handler: LuaHandler, arguments: [LuaValue], info: LuaInvocationInfo, timeout: Duration? = nil) async -> LuaOutcome {
        guard let ref = handlers[handler.id] else {
            return LuaOutcome(result: .failure(LuaError(.invalidHandler, "\(handler.path): handler is not loaded")), instructions: 0)
        }
        let outcome = await run(functionRef: ref, arguments: arguments, info: info, timeout: timeout ?? handler.options.timeout, keepResultRef: false)
        return LuaOutcome(result: outcome.result.map { _ in outcome.values }, instructions: outcome.instructions)
    }

    private struct RunOutcome {
        var result: Result<Int32, LuaError>
        var values: [LuaValue] = []
        var instructions: Int64 = 0
        var error: LuaError? {
            if case .failure(let error) = result { return error }
            return nil
        }
    }

    /// What one invocation carries between resumes. Kept small: it is what stays in memory, in the
    /// caller's async frame, while the invocation waits for a host call.
    private struct Invocation {
        let thread: OpaquePointer
        let info: LuaInvocationInfo
        let wallClock: Duration
        let deadline: ContinuousClock.Instant
        let deadlineSeconds: Double
        let keepResultRef: Bool
        var instructionsLeft: Int64
        var argumentCount: Int32
        var used: Int64 = 0
    }

    /// What a resume came to: the end of the invocation, or a host call to wait for.
    private enum Step {
        case finished(RunOutcome)
        case wait(LuaCall.Operation)
    }

    /// Resumes a new coroutine for `functionRef` until it returns, fails or is stopped by a limit.
    /// With `keepResultRef`, the first result is kept in the registry and its reference returned.
    private func run(functionRef: Int32, arguments: [LuaValue], info: LuaInvocationInfo, timeout: Duration?, keepResultRef: Bool) async -> RunOutcome {
        let L = state.L
        guard let thread = lua_newthread(L) else {
            return RunOutcome(result: .failure(LuaError(.memory, "cannot create a coroutine")))
        }
        // Mark it as an invocation: the sandbox refuses to resume or close it from a script.
        clua_getref(L, state.invocationsRef)
        lua_pushvalue(L, -2)
        lua_pushboolean(L, 1)
        lua_rawset(L, -3)
        clua_pop(L, 1)
        let threadRef = clua_ref(L)
        defer {
            clua_unref(L, threadRef)
            // Whatever stopped this invocation must not stop the next thing Lua does.
            state.context.pointee.kill_reason = CLUA_KILL_NONE
        }
        if let failure = pushArguments(functionRef: functionRef, arguments, on: thread, info: info) { return failure }
        let wallClock = timeout ?? state.limits.wallClock
        var invocation = Invocation(
            thread: thread, info: info, wallClock: wallClock, deadline: ContinuousClock.now.advanced(by: wallClock),
            deadlineSeconds: clua_monotonic_now() + wallClock.seconds, keepResultRef: keepResultRef,
            instructionsLeft: state.limits.instructions, argumentCount: Int32(arguments.count))
        if let overLimit = memoryCheck() { return RunOutcome(result: .failure(overLimit)) }
        while true {
            switch resume(&invocation) {
            case .finished(let outcome):
                return outcome
            case .wait(let operation):
                let result: Result<[LuaValue], any Error>
                do {
                    result = .success(try await operation(invocation.deadline))
                } catch {
                    result = .failure(error)
                }
                if let outcome = deliver(result, to: &invocation) { return outcome }
            }
        }
    }

    /// Pushes the function and its arguments on the new coroutine; a failure when they do not fit.
    private func pushArguments(functionRef: Int32, _ arguments: [LuaValue], on thread: OpaquePointer, info: LuaInvocationInfo) -> RunOutcome? {
        guard lua_checkstack(thread, Int32(arguments.count + 1)) != 0 else {
            return RunOutcome(result: .failure(LuaError(.runtime, "\(info.handlerPath): too many arguments")))
        }
        clua_getref(thread, functionRef)
        for (position, argument) in arguments.enumerated() {
            do {
                try state.push(argument, on: thread)
            } catch {
                return RunOutcome(result: .failure(LuaError(.runtime, "\(info.handlerPath): argument \(position + 1): \(error)")))
            }
        }
        return nil
    }

    /// Resumes the coroutine once, with the limits of the invocation, and says what came of it.
    private func resume(_ invocation: inout Invocation) -> Step {
        let L = state.L
        let context = state.context
        let thread = invocation.thread
        context.pointee.instructions_left = invocation.instructionsLeft
        context.pointee.deadline = invocation.deadlineSeconds
        context.pointee.kill_reason = CLUA_KILL_NONE
        context.pointee.kill_line = 0
        context.pointee.host_yield = 0
        context.pointee.close_depth = 0
        state.pendingOperation = nil
        context.pointee.invocation = thread
        state.running = (thread, invocation.info)
        var resultCount: Int32 = 0
        let argumentCount = invocation.argumentCount
        let status = state.withEnforcedLimits { lua_resume(thread, nil, argumentCount, &resultCount) }
        state.running = nil
        context.pointee.invocation = nil
        // The budget only counts down to zero (C saturates its charges), but a handler's value must
        // never reach Swift arithmetic that can trap: clamp before subtracting.
        invocation.instructionsLeft = min(max(context.pointee.instructions_left, 0), state.limits.instructions)
        let used = state.limits.instructions - invocation.instructionsLeft
        invocation.used = used
        let info = invocation.info

        if context.pointee.kill_reason != CLUA_KILL_NONE {
            // Stopped by the hook: by a yield, by an error raised where it could not yield, or
            // after a coroutine of the script was stopped and its resumer ran to the end.
            state.pendingOperation = nil
            return .finished(RunOutcome(result: .failure(limitError(context.pointee.kill_reason, info: info, wallClock: invocation.wallClock)), instructions: used))
        }
        switch status {
        case LUA_OK:
            if invocation.keepResultRef {
                if resultCount == 0 { lua_pushnil(thread) } else { lua_settop(thread, 1) }
                lua_xmove(thread, L, 1)
                return .finished(RunOutcome(result: .success(clua_ref(L)), instructions: used))
            }
            var values: [LuaValue] = []
            for index in 0..<resultCount {
                do {
                    values.append(try state.value(at: lua_gettop(thread) - resultCount + 1 + index, on: thread, depth: state.limits.jsonDepth))
                } catch {
                    return .finished(RunOutcome(result: .failure(LuaError(.runtime, "\(info.handlerPath): cannot return this value: \(error.message)")), instructions: used))
                }
            }
            return .finished(RunOutcome(result: .success(0), values: values, instructions: used))
        case LUA_YIELD:
            // Only a yield from the trampoline is a host call; a script's own yield of this
            // coroutine must not pick up an operation left by a host call that failed.
            let hostYield = context.pointee.host_yield == 1
            context.pointee.host_yield = 0
            guard hostYield, let operation = state.pendingOperation else {
                return .finished(RunOutcome(result: .failure(LuaError(.runtime, "\(info.handlerPath): the handler yielded outside a coroutine it created")), instructions: used))
            }
            state.pendingOperation = nil
            lua_settop(thread, 0)
            return .wait(operation)
        default:
            let error = state.popError(status, on: thread)
            if error.reason == .memory { clua_collectgarbage(L) }
            return .finished(RunOutcome(result: .failure(error), instructions: used))
        }
    }

    /// Pushes a host call's results (or its error) for the next resume; an outcome when the
    /// invocation ends here instead (deadline passed, results do not fit, memory cap).
    private func deliver(_ result: Result<[LuaValue], any Error>, to invocation: inout Invocation) -> RunOutcome? {
        let thread = invocation.thread
        let info = invocation.info
        guard ContinuousClock.now < invocation.deadline else {
            return RunOutcome(result: .failure(limitError(CLUA_KILL_DEADLINE, info: info, wallClock: invocation.wallClock)), instructions: invocation.used)
        }
        switch result {
        case .success(let results):
            guard lua_checkstack(thread, Int32(results.count + 2)) != 0 else {
                return RunOutcome(result: .failure(LuaError(.runtime, "\(info.handlerPath): too many results from a host call")), instructions: invocation.used)
            }
            lua_pushboolean(thread, 1)
            do {
                for value in results { try state.push(value, on: thread) }
                invocation.argumentCount = Int32(results.count + 1)
            } catch {
                lua_settop(thread, 0)
                lua_pushboolean(thread, 0)
                lua_pushstring(thread, "\(error)")
                invocation.argumentCount = 2
            }
        case .failure(let error):
            lua_pushboolean(thread, 0)
            state.running = (thread, info)
            state.pushMessage((error as? LuaHostError)?.message ?? "\(error)", on: thread)
            state.running = nil
            invocation.argumentCount = 2
        }
        if let overLimit = memoryCheck() { return RunOutcome(result: .failure(overLimit), instructions: invocation.used) }
        return nil
    }

    /// Fails the invocation when values the host pushed took the state over its cap.
    private func memoryCheck() -> LuaError? {
        let limit = state.limits.memoryBytes
        guard limit > 0, state.memoryUsed > limit else { return nil }
        clua_collectgarbage(state.L)
        guard state.memoryUsed > limit else { return nil }
        return LuaError(.memory, "memory limit exceeded (\(limit >> 20) MiB)")
    }

    /// The error for an invocation the hook stopped, with the place it was stopped at.
    private func limitError(_ reason: Int32, info: LuaInvocationInfo, wallClock: Duration) -> LuaError {
        var place = info.handlerPath
        let line = state.context.pointee.kill_line
        if line > 0 {
            let source = withUnsafeBytes(of: state.context.pointee.kill_source) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            place = "\(source):\(line)"
        }
        if reason == CLUA_KILL_DEADLINE {
            return LuaError(.deadline, "\(place): deadline exceeded (\(wallClock.milliseconds) ms)")
        }
        return LuaError(.instructionLimit, "\(place): instruction limit exceeded (\(state.limits.instructions) instructions)")
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
