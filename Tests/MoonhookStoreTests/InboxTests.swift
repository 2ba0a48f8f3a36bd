import Foundation
import Logging
import MoonhookStore
import MoonhookTestSupport
import Testing

@Suite("The inbox")
struct InboxTests {
    static func delivery(_ id: String, source: String = "s", handlers: [String] = ["s/a.lua", "s/b.lua"], receivedAt: Date = Date()) -> InboxDelivery {
        InboxDelivery(source: source, id: id, type: "t", receivedAt: receivedAt, headers: ["x-h": "1"], body: bytes(#"{"type":"t"}"#), handlers: handlers)
    }

    static let week = Duration.seconds(7 * 86400)

    static func claimAll(_ store: any Store, lease: Duration = .seconds(30)) async throws -> [ClaimedPair] {
        try await store.claim(candidates: 100, lease: lease) { $0 }
    }

    @Test(arguments: StoreEngine.all) func appendDeduplicatesWithinRetention(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
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
        await made.remove()
    }

    /// A dead outcome's alert is stored with it, in its transaction: once, and only when the
    /// outcome is recorded (a second finish of the same attempt stores nothing).
    @Test(arguments: StoreEngine.all) func aDeadOutcomeStoresItsAlertOnce(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        _ = try await store.append(Self.delivery("d1", handlers: ["s/a.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
        let pair = try #require(try await Self.claimAll(store).first)
        let alert = InboxDelivery(
            source: "s", id: "moonhook.dead:\(pair.delivery.seq):s/a.lua:1", type: "moonhook.dead", receivedAt: Date(), headers: [:],
            body: bytes(#"{"handler":"s/a.lua"}"#), handlers: ["s/_dead.lua"])
        let record = AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [])
        #expect(try await store.finish(pair, outcome: .dead(error: "boom", alert: alert), record: record))
        #expect(try await store.finish(pair, outcome: .dead(error: "boom", alert: alert), record: record) == false)
        let alerts = try await store.deliveries(DeliveryFilter(type: "moonhook.dead")).deliveries
        #expect(alerts.count == 1)
        let due = try await Self.claimAll(store)
        #expect(due.map(\.handler) == ["s/_dead.lua"], "the alert's pair is due at once")
        #expect(due.first?.delivery.body == alert.body)
        await made.remove()
    }

    @Test(arguments: StoreEngine.all) func claimFinishRetryDeadReplay(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        _ = try await store.append(Self.delivery("d1"), retention: Self.week, claimed: false, lease: .seconds(30))
        let pairs = try await Self.claimAll(store)
        #expect(pairs.map(\.handler).sorted() == ["s/a.lua", "s/b.lua"])
        #expect(pairs.allSatisfy { $0.attempt == 1 && $0.failures == 0 && $0.delivery.headers == ["x-h": "1"] })
        #expect(try await Self.claimAll(store).isEmpty, "a leased pair was claimed twice")
        let a = try #require(pairs.first { $0.handler == "s/a.lua" })
        let b = try #require(pairs.first { $0.handler == "s/b.lua" })
        let line = AttemptLogLine(level: .info, message: "hi", fields: ["n": "1"])
        let record = AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [line])
        #expect(try await store.finish(a, outcome: .done, record: record))
        #expect(try await store.finish(a, outcome: .done, record: record) == false, "a finished attempt was finished twice")
        #expect(try await store.finish(b, outcome: .retry(at: Date().addingTimeInterval(-1), error: "boom"), record: record))
        let retried = try await Self.claimAll(store)
        #expect(retried.map(\.handler) == ["s/b.lua"])
        #expect(retried.first?.attempt == 2)
        #expect(retried.first?.failures == 1)
        #expect(try await store.finish(retried[0], outcome: .dead(error: "boom again"), record: record))
        #expect(try await Self.claimAll(store).isEmpty, "a dead pair was claimed")

        let dead = try await store.deliveries(DeliveryFilter(status: .dead)).deliveries
        #expect(dead.count == 1)
        #expect(dead.first?.statuses == [.done: 1, .dead: 1])
        let detail = try #require(try await store.show(dead[0].seq))
        #expect(detail.attempts.map(\.outcome) == [.done, .retry, .dead])
        #expect(detail.attempts.last?.error == "boom again")
        #expect(detail.attempts.first?.logs == [line])
        #expect(detail.pairs.first { $0.handler == "s/b.lua" }?.lastError == "boom again")

        // Replaying the dead pairs makes them due with a fresh retry budget.
        #expect(try await store.replay(.dead(DeliveryFilter())) == 1)
        let replayed = try await Self.claimAll(store)
        #expect(replayed.map(\.handler) == ["s/b.lua"])
        #expect(replayed.first?.attempt == 3)
        #expect(replayed.first?.failures == 0)
        #expect(try await store.finish(replayed[0], outcome: .done, record: record))

        // Replaying one delivery claims a replay pair for the dispatcher to resolve.
        #expect(try await store.replay(.delivery(dead[0].seq)) == 1)
        #expect(try await store.replay(.delivery(9999)) == 0)
        let marker = try await Self.claimAll(store)
        #expect(marker.map(\.kind) == [.replay])
        try await store.resolved(marker[0], handlers: ["s/a.lua", "s/c.lua"])
        #expect(try await Self.claimAll(store).map(\.handler).sorted() == ["s/a.lua", "s/c.lua"])
        await made.remove()
    }

    /// A pair whose lease runs out (its process died) is claimed again, as the next attempt; the
    /// dead process's late finish is then refused.
    @Test(arguments: StoreEngine.all) func expiredLeasesAreClaimedAgain(engine: StoreEngine) async throws {
        let time = TestClock()
        let made = try await engine.make(clock: time.clock)
        let store = made.store
        _ = try await store.append(Self.delivery("d1", handlers: ["s/a.lua"]), retention: Self.week, claimed: true, lease: .seconds(30))
        #expect(try await Self.claimAll(store).isEmpty, "a leased pair was claimed before its lease ran out")
        time.advance(by: .seconds(31))
        let again = try await Self.claimAll(store)
        #expect(again.map(\.attempt) == [2])
        let stale = ClaimedPair(delivery: again[0].delivery, handler: "s/a.lua", attempt: 1, failures: 0)
        #expect(try await store.finish(stale, outcome: .done, record: AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [])) == false)
        // Renewed leases do not run out.
        #expect(again.first?.abandoned == true)
        #expect(again.first?.failures == 1, "an abandoned attempt counts as failed")
        // Renewed leases do not run out; a renewal by the stale attempt extends nothing.
        time.advance(by: .seconds(20))
        try await store.renew([again[0].lease, stale.lease], lease: .seconds(60))
        time.advance(by: .seconds(40))
        #expect(try await Self.claimAll(store).isEmpty)
        time.advance(by: .seconds(30))
        #expect(try await Self.claimAll(store).map(\.attempt) == [3])
        await made.remove()
    }

    /// `choose` sees at most `candidates` pairs per handler, so a backlog of one handler leaves
    /// room for the others.
    @Test(arguments: StoreEngine.all) func oneHandlersBacklogDoesNotCrowdOutOthers(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        for index in 0..<50 {
            _ = try await store.append(Self.delivery("slow-\(index)", handlers: ["s/slow.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
        }
        _ = try await store.append(Self.delivery("fast", handlers: ["s/fast.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
        let seen = try await store.claim(candidates: 4, lease: .seconds(30)) { candidates in
            candidates.filter { $0.handler == "s/fast.lua" }
        }
        #expect(seen.map(\.handler) == ["s/fast.lua"])
        await made.remove()
    }

    /// A source with 10,000 pending pairs delays another source's new pair by one claim round at
    /// most: the first claim after it is stored already takes it.
    @Test(arguments: StoreEngine.all) func aBigBacklogDelaysAnotherSourceByOneClaimAtMost(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        for chunk in stride(from: 0, to: 10_000, by: 500) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in chunk..<(chunk + 500) {
                    group.addTask {
                        _ = try await store.append(
                            Self.delivery("big-\(index)", source: "big", handlers: ["big/a.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
                    }
                }
                try await group.waitForAll()
            }
        }
        _ = try await store.append(Self.delivery("new", source: "small", handlers: ["small/a.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
        // A dispatcher with 8 free slots: the first claim takes the small source's pair among them.
        let claimed = try await store.claim(candidates: 8, lease: .seconds(30)) { Array($0.prefix(8)) }
        #expect(claimed.contains { $0.delivery.source == "small" }, "\(claimed.map(\.delivery.id))")
        #expect(try await store.pairCounts().byStatus[.pending] == 10_000 + 1 - claimed.count)
        await made.remove()
    }

    /// The same delivery sent many times at once (so that copies share a batch) is stored once:
    /// one is accepted, every other copy is its duplicate, and it has one pair per handler.
    @Test(arguments: StoreEngine.all) func duplicatesWithinOneBatchAreStoredOnce(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
            for _ in 0..<50 {
                group.addTask { try await store.append(Self.delivery("same"), retention: Self.week, claimed: false, lease: .seconds(30)) }
            }
            return try await group.reduce(into: [AppendResult]()) { $0.append($1) }
        }
        var accepted: [Int64] = []
        var duplicateOf: Set<Int64> = []
        for result in results {
            switch result {
            case .accepted(let seq): accepted.append(seq)
            case .duplicate(let seq, _): duplicateOf.insert(seq)
            }
        }
        #expect(accepted.count == 1, "\(results)")
        #expect(duplicateOf == Set(accepted), "\(results)")
        #expect(try await store.pairCounts().byStatus == [.pending: 2])
        #expect(store.writeStatistics.largestBatch > 1 || engine == .sqlite, "the copies never shared a batch: \(store.writeStatistics)")
        await made.remove()
    }

    /// Concurrent appends share batches, and every one of them is stored.
    @Test(arguments: StoreEngine.all) func concurrentAppendsAreGroupCommitted(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                group.addTask {
                    _ = try await store.append(Self.delivery("d\(index)", handlers: ["s/a.lua"]), retention: Self.week, claimed: false, lease: .seconds(30))
                }
            }
            try await group.waitForAll()
        }
        let statistics = store.writeStatistics
        #expect(statistics.writes == 400)
        #expect(statistics.batches < 400, "no two appends shared a batch: \(statistics)")
        #expect(try await store.deliveries(DeliveryFilter(limit: 1000)).deliveries.count == 400)
        let later = DeliveryFilter(until: Date().addingTimeInterval(60))
        #expect(try await store.purge(later, onlyFinished: true) == 0, "unfinished deliveries were pruned")
        #expect(try await store.purge(later, onlyFinished: false) == 400)
        #expect(try await store.deliveries(DeliveryFilter()).deliveries.isEmpty)
        await made.remove()
    }

    /// Filters by source, type, id, state and time, newest first, a page at a time; replay and
    /// purge take the same filters; counts by state and the oldest waiting delivery per source.
    @Test(arguments: StoreEngine.all) func queriesFilterPageReplayAndPurge(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        let start = Date(timeIntervalSince1970: 1_700_000_000)
        for index in 0..<12 {
            var delivery = Self.delivery(
                "d\(index)", source: index % 2 == 0 ? "even" : "odd", handlers: ["x/a.lua"], receivedAt: start.addingTimeInterval(Double(index) * 60))
            delivery.type = index % 3 == 0 ? "push" : "issue"
            delivery.orderingKeys = index < 6 ? ["x/a.lua": "block:repo-\(index)"] : [:]
            _ = try await store.append(delivery, retention: Self.week, claimed: false, lease: .seconds(30))
        }
        let all = try await store.deliveries(DeliveryFilter())
        #expect(all.deliveries.map(\.id) == (0..<12).reversed().map { "d\($0)" }, "not newest first")
        #expect(all.next == nil)

        // Pages of 5: 5, 5, 2, each older than the one before, together all of them once.
        var seen: [String] = []
        var cursor: Int64?
        var pages = 0
        repeat {
            let page = try await store.deliveries(DeliveryFilter(limit: 5, cursor: cursor))
            seen += page.deliveries.map(\.id)
            cursor = page.next
            pages += 1
        } while cursor != nil && pages < 10
        #expect(seen == all.deliveries.map(\.id))
        #expect(pages == 3)

        #expect(try await store.deliveries(DeliveryFilter(source: "even")).deliveries.map(\.id) == ["d10", "d8", "d6", "d4", "d2", "d0"])
        #expect(try await store.deliveries(DeliveryFilter(type: "push")).deliveries.map(\.id) == ["d9", "d6", "d3", "d0"])
        #expect(try await store.deliveries(DeliveryFilter(source: "even", type: "push")).deliveries.map(\.id) == ["d6", "d0"])
        #expect(try await store.deliveries(DeliveryFilter(id: "d7")).deliveries.map(\.id) == ["d7"])
        let window = DeliveryFilter(since: start.addingTimeInterval(120), until: start.addingTimeInterval(300))
        #expect(try await store.deliveries(window).deliveries.map(\.id) == ["d4", "d3", "d2"], "since is inclusive, until exclusive")

        // Every pair pending; the oldest waiting per source is its first delivery.
        var counts = try await store.pairCounts()
        #expect(counts.byStatus == [.pending: 12])
        #expect(counts.oldestWaiting == ["even": start, "odd": start.addingTimeInterval(60)])

        // Kill every pair of "odd": dead; replay of dead "odd" pushes only.
        let claimed = try await store.claim(candidates: 100, lease: .seconds(30)) { $0.filter { $0.source == "odd" } }
        #expect(claimed.count == 6)
        #expect(claimed.allSatisfy { ($0.delivery.orderingKeys == ["x/a.lua": "block:repo-\(Int($0.delivery.id.dropFirst())!)"]) == (Int($0.delivery.id.dropFirst())! < 6) }, "ordering keys not kept")
        for pair in claimed {
            try await store.finish(pair, outcome: .dead(error: "no"), record: AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: []))
        }
        counts = try await store.pairCounts()
        #expect(counts.byStatus == [.pending: 6, .dead: 6])
        #expect(counts.oldestWaiting == ["even": start])
        #expect(try await store.deliveries(DeliveryFilter(status: .dead)).deliveries.count == 6)
        #expect(try await store.replay(.dead(DeliveryFilter(type: "push"))) == 2, "d3, d9")
        #expect(try await store.pairCounts().byStatus == [.pending: 8, .dead: 4])

        // Purge by filter: the "odd" deliveries before d7, whatever their state; then by time only.
        #expect(try await store.purge(DeliveryFilter(source: "odd", until: start.addingTimeInterval(7 * 60)), onlyFinished: false) == 3)
        #expect(try await store.deliveries(DeliveryFilter(source: "odd")).deliveries.map(\.id) == ["d11", "d9", "d7"])
        #expect(try await store.purge(DeliveryFilter(until: start.addingTimeInterval(3600)), onlyFinished: true) == 0, "pending deliveries purged as finished")
        await made.remove()
    }
    /// Processes sharing the database claim at the same time: every due pair goes to exactly one.
    @Test(arguments: StoreEngine.all) func concurrentClaimersGetDisjointPairs(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let second = try await made.another()
        for index in 0..<100 {
            _ = try await made.store.append(Self.delivery("d\(index)"), retention: Self.week, claimed: false, lease: .seconds(30))
        }
        let stores: [any Store] = [made.store, second]
        let claimed = try await withThrowingTaskGroup(of: [PairLease].self) { group in
            for store in stores {
                group.addTask {
                    var mine: [PairLease] = []
                    while true {
                        let pairs = try await store.claim(candidates: 7, lease: .seconds(30)) { $0 }
                        if pairs.isEmpty { return mine }
                        mine += pairs.map(\.lease)
                    }
                }
            }
            return try await group.reduce(into: [[PairLease]]()) { $0.append($1) }
        }
        let all = claimed.flatMap { $0 }
        #expect(all.count == 200, "\(claimed.map(\.count))")
        #expect(Set(all).count == all.count, "a pair was claimed twice")
        await second.close()
        await made.remove()
    }
}
