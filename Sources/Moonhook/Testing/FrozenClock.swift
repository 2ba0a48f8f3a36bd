import Foundation
import LuaRuntime
import Synchronization

/// The time of one handler test case: it stands still unless the case sets it or a handler
/// sleeps, so that what a handler computes from the time is the same on every run.
final class FrozenClock: Sendable {
    private let current: Mutex<Date>

    init(_ start: Date) {
        current = Mutex(start)
    }

    var now: Date { current.withLock { $0 } }

    /// Milliseconds since the epoch: what the key-value store's expiry reads.
    var milliseconds: Int64 { Int64((now.timeIntervalSince1970 * 1000).rounded(.down)) }

    func advance(by duration: Duration) {
        current.withLock { $0 = $0.addingTimeInterval(Double(duration.totalNanoseconds) / 1e9) }
    }

    /// `time.now`, `time.iso` and `time.sleep` on this clock: a sleep moves the time on at once.
    var handlerClock: HandlerClock {
        HandlerClock(now: { self.now }) { duration, _ in self.advance(by: duration) }
    }

    /// `os.time()`, `os.date()` and `os.clock()` on this clock (built on `time.now`). With an
    /// argument, `os.time` and `os.date` are stock Lua's; `os.clock` counts the seconds the case's
    /// clock moved since the worker started, as no CPU time passes in a frozen world.
    static func osLibrary() -> LuaLibrary {
        var os = LuaLibrary(name: "os")
        os.setup = #"""
        local lib, host = ...
        local now, real_time, real_date, floor = host.time.now, os.time, os.date, math.floor
        local started = now()
        lib.time = function(...)
          if select("#", ...) == 0 or (...) == nil then return floor(now()) end
          return real_time(...)
        end
        lib.date = function(format, t, ...)
          if t == nil then t = floor(now()) end
          return real_date(format, t, ...)
        end
        lib.clock = function() return now() - started end
        """#
        return os
    }
}
