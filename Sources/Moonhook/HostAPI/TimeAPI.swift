import Foundation
import LuaRuntime

/// `time.now()` (Unix seconds, fractional), `time.iso()` (RFC 3339 UTC) and `time.sleep(ms)`, which
/// suspends the handler's coroutine without blocking a thread.
public enum TimeAPI {
    /// Longest single sleep; the invocation's deadline cuts it shorter anyway.
    static let maxSleepMilliseconds: Int64 = 60_000

    public static func library(clock: HandlerClock = .system) -> LuaLibrary {
        var time = LuaLibrary(name: "time")
        time.function("now", "fun(): number", "Unix time in seconds, with fractions") { call in
            try call.returning(.number(clock.now().timeIntervalSince1970))
        }
        time.function("iso", "fun(seconds?: number): string", "RFC 3339 UTC time (2026-11-23T18:47:48.123Z) of now, or of Unix seconds") { call in
            var date = clock.now()
            if !call.isNil(1) {
                let seconds = try call.number(1)
                // Years 1 to 9999: what RFC 3339 can write; NaN and infinities fail the check too.
                guard seconds >= -62_135_596_800, seconds <= 253_402_300_799 else {
                    throw LuaHostError("time.iso: seconds must be between -62135596800 and 253402300799 (years 1 to 9999)")
                }
                date = Date(timeIntervalSince1970: seconds)
            }
            return try call.returning(.string(iso8601(date)))
        }
        time.function("sleep", "fun(milliseconds: integer)", "Waits, at most 60000 ms, without blocking a thread") { call in
            let milliseconds = try call.integer(1)
            guard (0...maxSleepMilliseconds).contains(milliseconds) else {
                throw LuaHostError("time.sleep: milliseconds must be between 0 and \(maxSleepMilliseconds)")
            }
            return .suspend { deadline in
                try await clock.sleep(.milliseconds(milliseconds), deadline)
                return []
            }
        }
        return time
    }

    static func iso8601(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
