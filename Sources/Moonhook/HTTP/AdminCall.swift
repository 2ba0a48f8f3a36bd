import Hummingbird

/// What the admin API and the console do alike with a request: read the delivery number of its
/// path, and run a store call whose database failure answers 503 with the reason.
enum AdminCall {
    static func seq(_ context: MoonhookRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("seq"), let seq = Int64(text) else { throw HTTPFailure(.badRequest, "delivery number must be a whole number") }
        return seq
    }

    static func store<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw HTTPFailure(.serviceUnavailable, "store: \(error)")
        }
    }
}
