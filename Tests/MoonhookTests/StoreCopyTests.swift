import Foundation
import MoonhookStore
import MoonhookTestSupport
import Testing

/// `moonhook store copy`: an SQLite store's keys and unfinished deliveries moved to PostgreSQL
/// (or, outside `make test`, to another SQLite file), as a process.
@Suite("Copying a store")
struct StoreCopyTests {
    @Test func keysAndUnfinishedDeliveriesAreCopiedOnce() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        let from = "sqlite:" + handlers.folder.appending(path: "old/moonhook.sqlite").path
        let to = TestPostgres.enabled ? try await TestPostgres.database() : "sqlite:" + handlers.folder.appending(path: "new/moonhook.sqlite").path
        let source = try await StoreLocation(from).open(logger: LogRecords().logger())
        try await source.set("a", "plain", Array(#"{"n":1}"#.utf8), ttl: nil)
        try await source.set("a", "expiring", Array("2".utf8), ttl: .seconds(3600))
        try await source.set("b", "plain", Array(#""text""#.utf8), ttl: nil)
        try await source.set("b", "gone", Array("3".utf8), ttl: .milliseconds(1))
        for id in ["done", "pending", "dead", "retry", "running"] {
            let delivery = InboxDelivery(
                source: "s", id: id, type: "t", receivedAt: Date(), headers: ["x-h": id], body: Array(#"{"id":"\#(id)"}"#.utf8), handlers: ["s/t.lua"])
            _ = try await source.append(delivery, retention: .seconds(3600), claimed: false, lease: .seconds(30))
        }
        let claimed = try await source.claim(candidates: 10, lease: .seconds(30)) { $0 }
        let record = AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [])
        for pair in claimed {
            switch pair.delivery.id {
            case "done": try await source.finish(pair, outcome: .done, record: record)
            case "dead": try await source.finish(pair, outcome: .dead(error: "no"), record: record)
            case "retry": try await source.finish(pair, outcome: .retry(at: Date().addingTimeInterval(600), error: "later"), record: record)
            case "pending": try await source.finish(pair, outcome: .retry(at: Date(), error: "again"), record: record)
            default: break  // running: its process stopped
            }
        }
        await source.close()
        try await Task.sleep(for: .milliseconds(20))

        let first = try MoonhookProcess.run(["store", "copy", from, to])
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.hasPrefix("copied 3 keys and 3 deliveries (3 pairs to run) to "), "\(first.out)")
        #expect(!first.out.contains("sslmode=disable&") && !first.out.contains("password"), "\(first.out)")

        let target = try await StoreLocation(to).open(logger: LogRecords().logger())
        #expect(try await target.get("a", "plain") == Array(#"{"n":1}"#.utf8))
        #expect(try await target.get("b", "plain") == Array(#""text""#.utf8))
        #expect(try await target.get("b", "gone") == nil)
        let expiring = try await target.entries(after: nil, limit: 10).first { $0.key == "expiring" }
        let left = expiring?.expiresAt.map { $0.timeIntervalSinceNow } ?? 0
        #expect(left > 3500 && left <= 3601, "the TTL was not carried over: \(left) s left")
        let copied = try await target.deliveries(DeliveryFilter())
        #expect(Set(copied.deliveries.map(\.id)) == ["pending", "retry", "running"])
        #expect(copied.deliveries.allSatisfy { $0.statuses == [.pending: 1] })
        let retrySeq = try #require(copied.deliveries.first { $0.id == "retry" }?.seq)
        let detail = try #require(try await target.show(retrySeq))
        #expect(detail.delivery.headers == ["x-h": "retry"])
        #expect(detail.delivery.body == Array(#"{"id":"retry"}"#.utf8))
        #expect(try await target.claim(candidates: 10, lease: .seconds(30)) { $0 }.count == 3, "the copied pairs are not due")
        await target.close()

        let again = try MoonhookProcess.run(["store", "copy", from, to])
        #expect(again.status == 0, "\(again.err)")
        #expect(again.out.contains("0 deliveries (0 pairs to run)") && again.out.contains("3 deliveries were there already"), "\(again.out)")

        let missing = try MoonhookProcess.run(["store", "copy", "sqlite:/nonexistent/x.sqlite", to])
        #expect(missing.status != 0)
        #expect(missing.err.contains("no store at /nonexistent/x.sqlite"), "\(missing.err)")
        if TestPostgres.enabled { await TestPostgres.drop(to) }
    }
}
