import Logging
import MoonhookStore

/// Keeps the leases of the pairs this process runs alive, a third of the lease apart, so that no
/// other process takes them for pairs a dead process left behind.
struct LeaseRenewal: Sendable {
    let inbox: any DeliveryInbox
    let ledger: DispatchLedger
    let lease: Duration
    let logger: Logger

    /// Renews until cancelled.
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: lease / 3)
            let running = ledger.leases
            if running.isEmpty { continue }
            do {
                try await inbox.renew(running, lease: lease)
            } catch {
                logger.error("renewing leases failed", metadata: ["error": "\(error)", "pairs": "\(running.count)"])
            }
        }
    }
}
