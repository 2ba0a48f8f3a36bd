import Logging
import LuaRuntime

/// Builds Lua workers with every host API of moonhook installed.
public enum HandlerRuntime {
    /// The host libraries every handler gets, one per API area.
    public static func libraries(logger: Logger, limits: LuaLimits) -> [LuaLibrary] {
        [
            LogAPI.library(logger: logger, linesPerSecond: limits.logLinesPerSecond),
            TimeAPI.library(),
        ]
    }

    /// A worker with moonhook's host APIs.
    public static func makeWorker(logger: Logger, limits: LuaLimits = LuaLimits(), name: String = "lua-worker") throws(LuaError) -> LuaWorker {
        try LuaWorker(libraries: libraries(logger: logger, limits: limits), limits: limits, name: name)
    }
}
