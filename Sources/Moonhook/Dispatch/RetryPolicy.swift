import Foundation
import LuaRuntime

/// When a failed (delivery, handler) pair runs again: `retries` more times, after delays growing
/// by `factor` from `delay` up to `maxDelay`, each moved by up to ±20% at random so that a burst of
/// failures does not come back as a burst. The defaults follow Svix and Stripe: about a day of
/// retries, minutes apart at first, hours apart at the end.
public struct RetryPolicy: Sendable, Equatable {
    /// Retries after the first attempt; 0 dead-letters on the first failure.
    public var retries = 7
    /// Delay before the first retry.
    public var delay: Duration = .seconds(30)
    public var maxDelay: Duration = .seconds(10 * 3600)
    public var factor = 4.0

    public init() {}

    /// What follows failure number `failures` (1 for the first): nil when the budget is spent.
    public func delay(afterFailure failures: Int, random: Double = Double.random(in: 0...1)) -> Duration? {
        guard failures <= retries else { return nil }
        let base = Double(delay.totalMilliseconds) * pow(factor, Double(failures - 1))
        let capped = min(base, Double(maxDelay.totalMilliseconds))
        let jittered = capped * (0.8 + 0.4 * random)
        return .milliseconds(Int64(jittered.rounded()))
    }

    /// This policy with a handler's own `retries` and `retry_delay`.
    func overridden(by options: LuaHandlerOptions) -> RetryPolicy {
        var policy = self
        if let retries = options.retries { policy.retries = retries }
        if let delay = options.retryDelay { policy.delay = delay }
        return policy
    }
}
