/// An error from Lua code or from the runtime's limits, with a one-line message that names the place
/// (`browser-use/test.lua:3: boom`) or the limit (`instruction limit exceeded (1000000 instructions)`).
public struct LuaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for callers that react differently (a limit vs. a bug in a handler).
    public enum Reason: String, Sendable {
        /// The chunk did not compile.
        case syntax
        /// The script raised an error, or a host function refused its arguments.
        case runtime
        /// The per-state memory cap was reached.
        case memory
        /// The per-invocation instruction budget ran out.
        case instructionLimit
        /// The per-invocation wall-clock deadline passed (including time spent in host calls).
        case deadline
        /// The handler file or its return value is not usable.
        case invalidHandler
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }

    /// Whether the error is a runtime limit rather than a mistake in the script.
    public var isLimit: Bool {
        switch reason {
        case .memory, .instructionLimit, .deadline: true
        default: false
        }
    }
}

/// An error a host function throws to fail the Lua call that invoked it. The runtime prefixes the
/// caller's `file:line:` and raises it in Lua, where the script may catch it with `pcall`.
public struct LuaHostError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
