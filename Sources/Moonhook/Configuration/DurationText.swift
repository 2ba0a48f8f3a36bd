import Foundation

/// Durations as written in configuration files: a number of seconds (`30`, `0.5`) or a number
/// with a unit: `250ms`, `30s`, `5m`, `2h`, `7d`.
enum DurationText {
    static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "5ms" also ends in "s": only take a unit whose rest is a number.
            if let value = Double(number), value >= 0, value.isFinite { return .milliseconds(Int64((value * seconds * 1000).rounded())) }
        }
        if let value = Double(trimmed), value >= 0, value.isFinite { return .milliseconds(Int64((value * 1000).rounded())) }
        return nil
    }

    /// `duration` as written here, in the largest unit that divides it (`12h`, `90m`, `1500ms`).
    static func format(_ duration: Duration) -> String {
        let milliseconds = duration.totalMilliseconds
        for (suffix, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where milliseconds >= size && milliseconds % size == 0 {
            return "\(milliseconds / size)\(suffix)"
        }
        return "\(milliseconds)ms"
    }

    /// `parse`, or a configuration error naming `field`.
    static func parse(_ text: String, field: String, path: String) throws(ConfigurationError) -> Duration {
        guard let duration = parse(text) else {
            throw ConfigurationError(path: path, "'\(field)' must be a duration such as 30s, 5m, 2h or 7d, got '\(text)'")
        }
        return duration
    }
}
