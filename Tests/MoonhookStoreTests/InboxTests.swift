import Foundation
import Logging
import MoonhookStore
import Testing

@Suite("The inbox", .serialized)
struct InboxTests {
    static func delivery(_ id: String, source: String = "s", handlers: [String] = ["s/a.lua", "s/b.lua"], receivedAt: Date = Date()) -> InboxDelivery {
        InboxDelivery(source: source, id: id, type: "t", receivedAt: receivedAt, headers: ["x-h": "1"], body: bytes(#"{"type":"t"}"#), handlers: handlers)
    }

    static let week = Duration.seconds(7 * 86400)

    static func claimAll(_ store: SQLiteStore, lease: Duration = .seconds(30)) async throws -> [InboxTask] {
        try await store.claim(candidates: 100, lease: lease) { $0 }
    }

    @Test func appendDeduplicatesWithinRetention() async throws {
        let temporary = TemporaryStore()
        defer { temporary.remove() }
        let store = try await temporary.open()
        let first = try await store.append(Self.delivery("d1"), retention: Self.week, claimed: false, lease: .seconds(30))
        guard case .accepted(let seq) = first else { Issue.record("not accepted: \(first)"); return }
        let again = try await store.append(Self.delivery("d1"), retention: Self.week, claimed: false, lease: .seconds(30))
        guard case .duplicate(let same, _) = again else { Issue.record("not a duplicate: \(again)"); return }
        #expect(same == seq)
        // The same id from another source is another delivery.
        guard case .accepted = try await store.append(Self.delivery("d1", source: "other"), retention: Self.week, claimed: false, lease: .seconds(30)) else {
            Issue.record("another source's id was taken for a duplicate"); return
        }
        // Older than the retention window: new again.
        guard case .accepted(let newer) = try await store.append(Self.delivery("d1"), retention: .milliseconds(0), claimed: false, lease: .seconds(30)) else {
            Issue.record("an id past retention was still a duplicate"); return
        }
        #expect(newer != seq)
        // A forgotten one (a synchronous delivery answered non-2xx) is not a duplicate either.
        try await store.forget(newer)
        guard case .accepted = try await store.append(Self.delivery("d1"), retention: Self.week, claimed: false, lease: .seconds(30)) else {
            Issue.record("a forgotten id was still a duplicate"); return
        }
        await store.close()
    }

    @Test func claimFinishRetryDeadReplay() async throws {
        let temporary = TemporaryStore()
        defer { temporary.remove() }
        let store = try await temporary.open()
        _ = try await store.append(Self.delivery("d1"), retention: Self.week, claimed: false, lease: .seconds(30))
        let tasks = try await Self.claimAll(store)
        #expect(tasks.map(\.handler).sorted() == ["s/a.lua", "s/b.lua"])
        #expect(tasks.allSatisfy { $0.attempt == 1 && $0.failures == 0 && $0.delivery.headers == ["x-h": "1"] })
        #expect(try await Self.claimAll(store).isEmpty, "a leased pair was claimed twice")
        let a = try #require(tasks.first { $0.handler == "s/a.lua" })
        let b = try #require(tasks.first { $0.handler == "s/b.lua" })
        let record = AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [#"{"level":"info","message":"hi","fields":{}}"#])
        #expect(try await store.finish(a, outcome: .done, record: record))
        #expect(try await store.finish(a, outcome: .done, record: record) == false, "a finished attempt was finished twice")
        #expect(try await store.finish(b, outcome: .retry(at: Date().addingTimeInterval(-1), error: "boom"), record: record))
        let retried = try await Self.claimAll(store)
        #expect(retried.map(\.handler) == ["s/b.lua"])
        #expect(retried.first?.attempt == 2)
        #expect(retried.first?.failures == 1)
        #expect(try await store.finish(retried[0], outcome: .dead(error: "boom again"), record: record))
        #expect(try await Self.claimAll(store).isEmpty, "a dead pair was claimed")

        let dead = try await store.list(DeliveryFilter(status: .dead))
        #expect(dead.count == 1)
        #expect(dead.first?.statuses == [.done: 1, .dead: 1])
        let detail = try #require(try await store.show(dead[0].seq))
        #expect(detail.attempts.map(\.outcome) == ["done", "retry", "dead"])
        #expect(detail.attempts.last?.error == "boom again")
        #expect(detail.attempts.first?.logs == [#"{"fields":{},"level":"info","message":"hi"}"#])
        #expect(detail.tasks.first { $0.handler == "s/b.lua" }?.lastError == "boom again")

        // Replaying the dead pairs makes them due with a fresh retry budget.
        #expect(try await store.replay(.dead(DeliveryFilter())) == 1)
        let replayed = try await Self.claimAll(store)
        #expect(replayed.map(\.handler) == ["s/b.lua"])
        #expect(replayed.first?.attempt == 3)
        #expect(replayed.first?.failures == 0)
        #expect(try await store.finish(replayed[0], outcome: .done, record: record))

        // Replaying one delivery claims a marker (empty handler) for the dispatcher to resolve.
        #expect(try await store.replay(.delivery(dead[0].seq)) == 1)
        #expect(try await store.replay(.delivery(9999)) == 0)
        let marker = try await Self.claimAll(store)
        #expect(marker.map(\.handler) == [""])
        try await store.resolved(marker[0], handlers: ["s/a.lua", "s/c.lua"])
        #expect(try await Self.claimAll(store).map(\.handler).sorted() == ["s/a.lua", "s/c.lua"])
        await store.close()
    }

    /// A pair whose lease runs out (its process died) is claimed again, as the next attempt; the
    /// dead process's late finish is then refused.
    @Test func expiredLeasesAreClaimedAgain() async throws {
        let temporary = TemporaryStore()
        defer { temporary.remove() }
        let store = try await temporary.open()
        _ = try await store.append(Self.delivery("d1", handlers: ["s/a.lua"]), retention: Self.week, claimed: true, lease: .milliseconds(1))
        try await Task.sleep(for: .milliseconds(20))
        let again = try await Self.claimAll(store)
        #expect(again.map(\.attempt) == [2])
        let stale = InboxTask(delivery: again[0].delivery, handler: "s/a.lua", attempt: 1, failures: 0)
        #expect(try await store.finish(stale, outcome: .done, record: AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [])) == false)
        // Renewed leases do not run out.
        try await store.renew([(delivery: again[0].delivery.seq, handler: "s/a.lua", attempt: 2)], lease: .seconds(60))
        #expect(try await Self.claimAll(store).isEmpty)
        await store.close()
    }

    /// `choose` sees at most `candidates` pairs per handler, so a backlog of one handler leaves
    /// room for the others.
    @Test func oneHandlersBacklogDoesNotCrowdOutOthers() async throws {
        let temporary = TemporaryStore()
        defer { temporary.remove() }
        let store = try await temporary.open()
        for index in 0..<50 {
            _ = try await store.append(Self.delivery("slow-\(index)", handlers: ["s/slow.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
        }
        _ = try await store.append(Self.delivery("fast", handlers: ["s/fast.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
        let seen = try await store.claim(candidates: 4, lease: .seconds(30)) { candidates in
            candidates.filter { $0.handler == "s/fast.lua" }
        }
        #expect(seen.map(\.handler) == ["s/fast.lua"])
        await store.close()
    }

    /// Concurrent appends share batches, and every one of them is stored.
    @Test func concurrentAppendsAreGroupCommitted() async throws {
        let temporary = TemporaryStore()
        defer { temporary.remove() }
        let store = try await temporary.open()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                group.addTask {
                    _ = try await store.append(Self.delivery("d\(index)", handlers: ["s/a.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
                }
            }
            try await group.waitForAll()
        }
        let statistics = store.groupCommitStatistics
        #expect(statistics.writes == 400)
        #expect(statistics.batches < 400, "no two appends shared a batch: \(statistics)")
        #expect(try await store.list(DeliveryFilter(limit: 1000)).count == 400)
        #expect(try await store.purge(before: Date().addingTimeInterval(60), onlyFinished: true) == 0, "unfinished deliveries were pruned")
        #expect(try await store.purge(before: Date().addingTimeInterval(60), onlyFinished: false) == 400)
        #expect(try await store.list(DeliveryFilter()).isEmpty)
        await store.close()
    }
}
