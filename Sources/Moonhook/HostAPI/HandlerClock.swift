import Foundation

/// Where `time` (and, under `moonhook test`, `os.time`, `os.date`, `os.clock` and kv expiry)
/// reads the time and how `time.sleep` waits: the system's clock in the server, a frozen one that
/// a test sets and that sleeping advances (`FrozenClock`) in handler tests.
public struct HandlerClock: Sendable {
    /// The current time.
    public var now: @Sendable () -> Date
    /// Waits `duration`, or until the invocation's deadline if that comes first.
    public var sleep: @Sendable (Duration, ContinuousClock.Instant) async throws -> Void

    public init(now: @escaping @Sendable () -> Date, sleep: @escaping @Sendable (Duration, ContinuousClock.Instant) async throws -> Void) {
        self.now = now
        self.sleep = sleep
    }

    /// The system's clock; a sleep suspends the coroutine without blocking a thread.
    public static let system = HandlerClock(now: { Date() }) { duration, deadline in
        try await Task.sleep(until: min(ContinuousClock.now.advanced(by: duration), deadline), clock: .continuous)
    }
}
