/// A store operation that failed, in one line.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: String, Sendable {
        /// `increment` on a value that is not an integer.
        case notAnInteger
        /// The integer would overflow 64 bits.
        case overflow
        /// The database refused the statement or failed running it.
        case database
        /// The database stayed locked by another writer past the store timeout (SQLite).
        case busy
        /// The database cannot be reached, or did not answer within the store timeout.
        case unavailable
        /// The store URL or file cannot be used.
        case configuration
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}
