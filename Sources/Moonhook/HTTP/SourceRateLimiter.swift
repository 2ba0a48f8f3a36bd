import Foundation
import Synchronization

/// `rate_limit` of a source: a token bucket per source, in this process. A verified request takes
/// a token; without one it is refused with 429 and `Retry-After` (the seconds until a token is
/// back). Per instance: N instances behind a load balancer let N times the rate through.
final class SourceRateLimiter: Sendable {
    private struct Bucket {
        var limit: SourceConfiguration.RateLimit
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let buckets = Mutex<[String: Bucket]>([:])

    /// Takes a token of `source`'s bucket; nil when there was one, else how long until there is.
    /// A changed limit (a reloaded source.yaml) starts a full bucket.
    func admit(source: String, limit: SourceConfiguration.RateLimit, now: ContinuousClock.Instant = .now) -> Duration? {
        buckets.withLock { buckets in
            var bucket = buckets[source].flatMap { $0.limit == limit ? $0 : nil } ?? Bucket(limit: limit, tokens: Double(limit.burst), updated: now)
            let elapsed = Double((now - bucket.updated).totalNanoseconds) / 1e9
            bucket.tokens = min(Double(limit.burst), bucket.tokens + max(0, elapsed) * limit.rate.perSecond)
            bucket.updated = now
            defer { buckets[source] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .nanoseconds(Int64(((1 - bucket.tokens) / limit.rate.perSecond * 1e9).rounded(.up)))
        }
    }
}
