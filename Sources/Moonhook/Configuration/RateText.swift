/// A rate as written in configuration files and handler options: `100/s`, `6000/m`, `20/h`.
public struct Rate: Sendable, Equatable, CustomStringConvertible {
    /// Events per `unit`.
    public var count: Int
    /// The unit's length in seconds (1, 60 or 3600).
    public var unitSeconds: Int

    /// Events per second.
    public var perSecond: Double { Double(count) / Double(unitSeconds) }

    public var description: String { "\(count)/\(["1": "s", "60": "m", "3600": "h"]["\(unitSeconds)"] ?? "s")" }

    /// Parses `N/s`, `N/m` or `N/h` (N a whole number of at least 1); nil otherwise.
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = Int(parts[0].trimmingCharacters(in: .whitespaces)), count >= 1,
            let unit = ["s": 1, "m": 60, "h": 3600][parts[1].trimmingCharacters(in: .whitespaces)]
        else { return nil }
        self.count = count
        self.unitSeconds = unit
    }

    /// `init`, or a configuration error naming `field`.
    static func parse(_ text: String, field: String, path: String) throws(ConfigurationError) -> Rate {
        guard let rate = Rate(text) else { throw ConfigurationError(path: path, "'\(field)' must be a rate such as 100/s, 6000/m or 20/h, got '\(text)'") }
        return rate
    }
}

import Foundation
