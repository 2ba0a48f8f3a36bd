/// A table of host functions and constants that every handler's environment gets a copy of,
/// such as `json` or `log`. Built by the host, one file per API area, before the state exists.
/// A library named `_G` is not a table: its members become globals of their own.
///
/// ```swift
/// var time = LuaLibrary(name: "time")
/// time.function("now") { call in call.returning(.number(Date().timeIntervalSince1970)) }
/// ```
public struct LuaLibrary: Sendable {
    public let name: String
    public private(set) var functions: [(name: String, availability: LuaHostFunction.Availability, body: LuaHostFunction.Body)] = []
    public private(set) var values: [(String, LuaValue)] = []
    /// Lua code run once when the state is built, with the library's table and the table of the
    /// libraries built before it (`json` first) as arguments, to add functions written in Lua
    /// (wrappers around host functions). It runs outside the sandbox.
    public var setup: String?

    /// Every member handlers see, with its type as lua-language-server writes it
    /// (`fun(key: string): any`) and what it does: what `moonhook types` writes and `moonhook check`
    /// knows. Declared where the member is registered, so that the two cannot drift apart.
    public private(set) var declarations: [LuaDeclaration] = []

    public init(name: String) {
        self.name = name
    }

    /// Adds `name` as a host function, declared with `type` and `summary` unless it is hidden
    /// (the host half of a function a Lua wrapper exposes, which `setup` removes).
    public mutating func function(
        _ name: String, _ type: String? = nil, _ summary: String = "", availability: LuaHostFunction.Availability = .anywhere,
        _ body: @escaping LuaHostFunction.Body
    ) {
        functions.append((name, availability, body))
        if let type { declare(name, type, summary) }
    }

    /// Declares a member that is not a host function: one `setup` writes in Lua, or a value.
    public mutating func declare(_ name: String, _ type: String, _ summary: String) {
        declarations.append(LuaDeclaration(name: name, type: type, summary: summary))
    }

    /// Sets where each function may run, by its full name (`kv.get`, see `fullName(of:)`).
    public mutating func setAvailability(_ availability: (String) -> LuaHostFunction.Availability) {
        for index in functions.indices {
            functions[index].availability = availability(fullName(of: functions[index].name))
        }
    }

    /// The name a function has in messages and in `setAvailability`: `kv.get`; `http.request` for
    /// `http._request`, the host half of a function a Lua wrapper exposes; `uuid` for a global.
    public func fullName(of function: String) -> String {
        if name == "_G" { return function }
        return "\(name).\(function.hasPrefix("_") ? String(function.dropFirst()) : function)"
    }

    /// Adds a constant field.
    public mutating func value(_ name: String, _ value: LuaValue, _ type: String, _ summary: String) {
        values.append((name, value))
        declare(name, type, summary)
    }
}

/// A member of a library as an editor sees it.
public struct LuaDeclaration: Sendable, Equatable {
    public var name: String
    /// Its type in lua-language-server's notation, such as `fun(key: string): any`.
    public var type: String
    /// One line on what it does.
    public var summary: String

    public init(name: String, type: String, summary: String) {
        self.name = name
        self.type = type
        self.summary = summary
    }
}

/// A Swift function callable from Lua.
public enum LuaHostFunction {
    /// Reads arguments from the call, pushes results and returns `.values(n)`, or returns
    /// `.suspend(operation)` to make the coroutine wait for async work. Throwing `LuaHostError`
    /// raises a Lua error in the caller (after this Swift frame has returned).
    public typealias Body = @Sendable (inout LuaCall) throws -> LuaCall.Result

    /// Where a host function may run. A handler file's top level runs in every worker on every
    /// reload, so whatever reaches outside the process (I/O, waiting) belongs inside a call.
    public enum Availability: Sendable {
        /// At a file's top level too.
        case anywhere
        /// Only while a handler is being called; at load time it raises a clear error.
        case insideCall
    }
}

/// What the invoker of a handler told the runtime about this invocation; host functions read it.
public struct LuaInvocationInfo: Sendable {
    /// The handler's path relative to the handlers folder.
    public var handlerPath: String
    /// Host-defined per-invocation state (the event's source, a log collector, ...). A class
    /// reference, not any value: this is copied into the async frames of every waiting
    /// invocation, and a value existential's 40 bytes there cost about 1 KiB of memory per
    /// suspended invocation (docs/benchmarks.md).
    public var context: (any AnyObject & Sendable)?
    /// True while the handler's file runs its top level (`LuaWorker.load`), not a call.
    public var isLoading: Bool

    public init(handlerPath: String, context: (any AnyObject & Sendable)? = nil, isLoading: Bool = false) {
        self.handlerPath = handlerPath
        self.context = context
        self.isLoading = isLoading
    }
}
