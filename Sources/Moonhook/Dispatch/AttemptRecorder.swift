import Foundation
import Logging
import MoonhookStore

/// Writes what became of attempts to the inbox. A write the database refuses is tried again for a
/// few seconds (about six, with backoff); if it never succeeds, the pair stays running in the
/// inbox and runs again once its lease runs out: at least once, never lost.
struct AttemptRecorder: Sendable {
    let inbox: any DeliveryInbox
    let logger: Logger

    /// Records how an attempt ended; a refused result (the lease ran out and another claim took
    /// the pair) is logged on `logger`, the attempt's own.
    func finish(_ pair: ClaimedPair, outcome: PairOutcome, record: AttemptRecord, logger attemptLogger: Logger) async {
        await write("recording an attempt") {
            if try await inbox.finish(pair, outcome: outcome, record: record) == false {
                attemptLogger.warning("attempt not recorded: its lease ran out and the pair was claimed again")
            }
        }
    }

    /// Records a pair dead without running it, with its dead-letter alert if one is due.
    func drop(_ pair: ClaimedPair, error: String, alert: InboxDelivery? = nil) async {
        let now = Date()
        await write("recording a pair not run") {
            try await inbox.finish(pair, outcome: .dead(error: error, alert: alert), record: AttemptRecord(startedAt: now, finishedAt: now, logs: []))
        }
    }

    /// Makes a replayed delivery's handlers, as resolved now, due.
    func resolved(_ pair: ClaimedPair, handlers: [String]) async {
        await write("resolving handlers") { try await inbox.resolved(pair, handlers: handlers) }
    }

    private func write(_ what: String, _ body: @Sendable () async throws -> Void) async {
        var delay = Duration.milliseconds(100)
        for attempt in 1...6 {
            do {
                try await body()
                return
            } catch {
                if attempt == 6 {
                    logger.error("\(what) failed; the pair runs again when its lease runs out", metadata: ["error": "\(error)"])
                    return
                }
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
    }
}
