/// Limits that keep one handler from hurting the process or other handlers.
///
/// Per state: `memoryBytes`. Per invocation: `instructions` and `wallClock` (which covers time spent
/// waiting for host calls). Per call: the caps on C-side library work, where no hook can interrupt.
public struct LuaLimits: Sendable, Equatable {
    /// Bytes the whole state (all handlers and suspended invocations of one worker) may allocate.
    public var memoryBytes: Int
    /// Lua VM instructions (plus charged C-side work) one invocation may execute.
    public var instructions: Int64
    /// Wall-clock time one invocation may take from its first resume, host calls included.
    public var wallClock: Duration
    /// Matching steps one `string.find/match/gmatch/gsub` call may take.
    public var patternSteps: Int64
    /// Largest string `string.rep` may build, in bytes.
    public var maxStringBytes: Int
    /// Most elements one `table.move` may move.
    public var maxMoveElements: Int
    /// Most work one bounded library call (`table.sort`, `string.rep`, ...) may be charged, in
    /// instructions: about 50 ms on a current core, so that the deadline is looked at again soon.
    public var maxCallWork: Int64
    /// Deepest nesting `json.encode`/`json.decode` accept.
    public var jsonDepth: Int
    /// Instructions between two checks of the budget and the deadline.
    public var hookInterval: Int32
    /// Log lines one handler may write per second before lines are dropped (and counted).
    public var logLinesPerSecond: Int
    /// Bytes of one log line (message plus fields, after redaction); longer ones are cut.
    public var logLineBytes: Int
    /// Bytes one invocation may log in all; past them its lines are dropped, with one warning.
    public var logBytesPerInvocation: Int

    public init(
        memoryBytes: Int = 128 << 20,
        instructions: Int64 = 50_000_000,
        wallClock: Duration = .seconds(10),
        patternSteps: Int64 = 10_000_000,
        maxStringBytes: Int = 4 << 20,
        maxMoveElements: Int = 1_000_000,
        maxCallWork: Int64 = 16_000_000,
        jsonDepth: Int = 64,
        hookInterval: Int32 = 1000,
        logLinesPerSecond: Int = 100,
        logLineBytes: Int = 8192,
        logBytesPerInvocation: Int = 65536
    ) {
        self.memoryBytes = memoryBytes
        self.instructions = instructions
        self.wallClock = wallClock
        self.patternSteps = patternSteps
        self.maxStringBytes = maxStringBytes
        self.maxMoveElements = maxMoveElements
        self.maxCallWork = maxCallWork
        self.jsonDepth = jsonDepth
        self.hookInterval = hookInterval
        self.logLinesPerSecond = logLinesPerSecond
        self.logLineBytes = logLineBytes
        self.logBytesPerInvocation = logBytesPerInvocation
    }
}
