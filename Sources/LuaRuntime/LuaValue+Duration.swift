extension LuaValue {
    /// A positive number of seconds, at most `maximum`, as a `Duration`; nil for anything else.
    ///
    /// Every duration a handler passes (option `timeout`, `retry_delay`, a kv `ttl`, an HTTP call's
    /// `timeout`) goes through here: a value such as `math.maxinteger`, `1e308` or NaN must be
    /// refused with the caller's one-line error, never reach arithmetic that traps.
    public func positiveSeconds(atMost maximum: Int64) -> Duration? {
        switch self {
        case .integer(let seconds) where seconds > 0 && seconds <= maximum:
            return .seconds(seconds)
        case .number(let seconds) where seconds > 0 && seconds <= Double(maximum):
            // At most `maximum` (far below 2^53 / 1000): the product is exact enough and fits.
            return .milliseconds(max(1, Int64((seconds * 1000).rounded())))
        default:
            return nil
        }
    }
}
