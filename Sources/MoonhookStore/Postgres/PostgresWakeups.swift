import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// Wake-ups between instances over LISTEN/NOTIFY on the `moonhook_due` channel.
///
/// Listening takes a dedicated connection (PostgresNIO's pool has no LISTEN), reconnected with
/// backoff whenever it drops; every (re)connect yields a wake-up too, since notifications sent
/// while it was down are lost. Notifying is its own statement after the commit that made work due
/// (a NOTIFY inside the transaction would hold PostgreSQL's cluster-wide notify lock through the
/// commit) and is debounced to one per 100 ms. Polling stays the fallback: a lost notification
/// delays work by one poll interval at most.
final class PostgresWakeups: Sendable {
    static let channel = "moonhook_due"
    static let debounce = Duration.milliseconds(100)

    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private struct Sending {
        var last: ContinuousClock.Instant?
        var scheduled = false
    }
    private let sending = Mutex(Sending())

    init(url: PostgresURL, tls: PostgresConnection.Configuration.TLS, logger: Logger) {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        self.logger = logger
    }

    /// Listens until cancelled.
    func listen() async {
        var backoff = Duration.milliseconds(200)
        var id = 0
        while !Task.isCancelled {
            id += 1
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
                backoff = .milliseconds(200)
                do {
                    try await connection.listen(on: Self.channel) { notifications in
                        continuation.yield()
                        for try await _ in notifications { continuation.yield() }
                    }
                } catch {
                    if !Task.isCancelled { logger.debug("listening for wake-ups stopped", metadata: ["error": "\(String(reflecting: error))"]) }
                }
                try? await connection.close()
            } catch {
                logger.debug("cannot connect to listen for wake-ups", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        continuation.finish()
    }

    /// Tells every instance that work is due: at once, or once the debounce interval since the
    /// last notification has passed. `send` runs the notifying statement.
    func notify(_ send: @escaping @Sendable () async -> Void) {
        let clock = ContinuousClock()
        let now = clock.now
        let wait: Duration? = sending.withLock { state in
            if state.scheduled { return nil }
            state.scheduled = true
            guard let last = state.last else { return .zero }
            return max(.zero, Self.debounce - (now - last))
        }
        guard let wait else { return }
        Task {
            if wait > .zero { try? await Task.sleep(for: wait) }
            self.sending.withLock { state in
                state.scheduled = false
                state.last = clock.now
            }
            await send()
        }
    }
}
