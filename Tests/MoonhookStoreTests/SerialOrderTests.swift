import Foundation
import MoonhookStore
import MoonhookTestSupport
import Testing

/// A serial handler's pairs of one key are claimed one at a time, in delivery order, on every engine.
@Suite(.timeLimit(.minutes(2))) struct SerialOrderTests {
    static let week: Duration = .seconds(7 * 86400)
    static let record = AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [])

    /// Deliveries `d0`..`d<n-1>` for handler `x/a.lua`, keyed `k<i % keys>` in `mode`.
    static func append(_ store: any DeliveryInbox, count: Int, keys: Int, mode: String = "block", claimed: Bool = false) async throws {
        for index in 0..<count {
            let delivery = InboxDelivery(
                source: "x", id: "d\(index)", type: "t", receivedAt: Date(timeIntervalSinceNow: -60), headers: [:], body: [], handlers: ["x/a.lua"],
                orderingKeys: ["x/a.lua": "\(mode):k\(index % keys)"])
            _ = try await store.append(delivery, retention: week, claimed: claimed, lease: .seconds(30))
        }
    }

    static func claim(_ store: any DeliveryInbox) async throws -> [String] {
        try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }.map(\.delivery.id).sorted()
    }

    @Test(arguments: StoreEngine.all) func oneAtATimePerKeyInOrder(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        try await Self.append(store, count: 6, keys: 2)
        // d0 (k0) and d1 (k1) first; each key's next only once its head is done.
        let first = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(first.map(\.delivery.id).sorted() == ["d0", "d1"])
        #expect(try await Self.claim(store) == [], "a key's next pair ran while its head was running")
        for pair in first where pair.delivery.id == "d0" { #expect(try await store.finish(pair, outcome: .done, record: Self.record)) }
        // What `show` says: d2 (k0) waits behind nothing now, d3 (k1) behind d1.
        let page = try await store.deliveries(DeliveryFilter())
        let seq = Dictionary(page.deliveries.map { ($0.id, $0.seq) }, uniquingKeysWith: { $1 })
        let waiting = try #require(try await store.show(seq["d3"]!)).pairs.first
        #expect(waiting?.orderingKey == "k1")
        #expect(waiting?.waitingOn == seq["d1"])
        #expect(try await store.show(seq["d2"]!)?.pairs.first?.waitingOn == nil)
        let second = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(second.map(\.delivery.id) == ["d2"])
        // A pair without a key is not held back by anything.
        _ = try await store.append(
            InboxDelivery(source: "x", id: "free", type: "t", receivedAt: Date(), headers: [:], body: [], handlers: ["x/a.lua"]), retention: Self.week,
            claimed: false, lease: .seconds(30))
        #expect(try await Self.claim(store) == ["free"])
        await made.remove()
    }

    @Test(arguments: StoreEngine.all) func aFailedHeadHoldsItsKeyUnlessSkipped(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        // block: d0 fails; d1 waits for d0's retry, which runs first.
        try await Self.append(store, count: 2, keys: 1, mode: "block")
        var head = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(head.map(\.delivery.id) == ["d0"])
        #expect(try await store.finish(head[0], outcome: .retry(at: Date(timeIntervalSinceNow: -1), error: "no"), record: Self.record))
        head = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(head.map(\.delivery.id) == ["d0"], "the failed head runs again before the next")
        #expect(head.first?.attempt == 2)
        #expect(try await store.finish(head[0], outcome: .dead(error: "no"), record: Self.record))
        #expect(try await Self.claim(store) == ["d1"], "a dead-lettered head lets the next run")
        await made.remove()
    }

    @Test(arguments: StoreEngine.all) func aSkippedFailureRetriesAfterTheNewerOnes(engine: StoreEngine) async throws {
        let made = try await engine.make()
        let store = made.store
        try await Self.append(store, count: 3, keys: 1, mode: "skip")
        var claimed = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(claimed.map(\.delivery.id) == ["d0"])
        #expect(try await store.finish(claimed[0], outcome: .retry(at: Date(timeIntervalSinceNow: -1), error: "no"), record: Self.record))
        claimed = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(claimed.map(\.delivery.id) == ["d1"], "the next runs while the failed one waits")
        #expect(try await Self.claim(store) == [], "still one at a time")
        #expect(try await store.finish(claimed[0], outcome: .done, record: Self.record))
        claimed = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(claimed.map(\.delivery.id) == ["d2"], "the failed one waits for every newer one")
        #expect(try await store.finish(claimed[0], outcome: .done, record: Self.record))
        #expect(try await Self.claim(store) == ["d0"])
        await made.remove()
    }

    @Test(arguments: StoreEngine.all) func aHeadWhoseProcessDiedRunsFirstOnceItsLeaseRunsOut(engine: StoreEngine) async throws {
        let time = TestClock()
        let made = try await engine.make(clock: time.clock)
        let store = made.store
        // k0's head was handed over at receipt and its process died; k1 is not held up by it.
        try await Self.append(store, count: 1, keys: 1, claimed: true)
        _ = try await store.append(
            InboxDelivery(source: "x", id: "other", type: "t", receivedAt: Date(timeIntervalSinceNow: -60), headers: [:], body: [], handlers: ["x/a.lua"], orderingKeys: ["x/a.lua": "block:k1"]),
            retention: Self.week, claimed: false, lease: .seconds(30))
        _ = try await store.append(
            InboxDelivery(source: "x", id: "next", type: "t", receivedAt: Date(timeIntervalSinceNow: -60), headers: [:], body: [], handlers: ["x/a.lua"], orderingKeys: ["x/a.lua": "block:k0"]),
            retention: Self.week, claimed: false, lease: .seconds(30))
        let other = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(other.map(\.delivery.id) == ["other"])
        for pair in other { #expect(try await store.finish(pair, outcome: .done, record: Self.record)) }
        time.advance(by: .seconds(31))
        let again = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(again.map(\.delivery.id) == ["d0"], "the abandoned head reruns first, its key's next waits")
        #expect(again.first?.abandoned == true)
        await made.remove()
    }

    /// A replayed event of a serial handler waits behind the pending ones of its key; with
    /// `.ignore`, it takes its own delivery's place, ahead of the newer ones.
    @Test(arguments: [(StoreEngine, ReplayOrder)](StoreEngine.all.flatMap { engine in [(engine, .keep), (engine, .ignore)] }))
    func aReplayWaitsBehindItsKeyUnlessOutOfOrder(engine: StoreEngine, order: ReplayOrder) async throws {
        let made = try await engine.make()
        let store = made.store
        try await Self.append(store, count: 3, keys: 1)
        let seqs = Dictionary(try await store.deliveries(DeliveryFilter()).deliveries.map { ($0.id, $0.seq) }, uniquingKeysWith: { $1 })
        let first = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(first.map(\.delivery.id) == ["d0"])
        #expect(try await store.finish(first[0], outcome: .done, record: Self.record))
        let running = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(running.map(\.delivery.id) == ["d1"])
        // d0 replayed while d1 runs and d2 waits: its replay pair resolves its handlers anew.
        #expect(try await store.replay(.delivery(seqs["d0"]!), order: order) == 1)
        let replay = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        #expect(replay.map(\.kind) == [.replay])
        try await store.resolved(replay[0], handlers: ["x/a.lua"])
        #expect(try await store.finish(running[0], outcome: .done, record: Self.record))
        let next = try await store.claim(candidates: 100, lease: .seconds(30)) { $0 }
        switch order {
        case .keep:
            #expect(next.map(\.delivery.id) == ["d2"], "the replayed event went ahead of a pending one")
            #expect(try await store.show(seqs["d0"]!)?.pairs.first?.waitingOn == seqs["d2"])
            #expect(try await store.finish(next[0], outcome: .done, record: Self.record))
            #expect(try await Self.claim(store) == ["d0"])
        case .ignore:
            #expect(next.map(\.delivery.id) == ["d0"], "out of order, the replayed event runs at its own place")
            #expect(try await store.show(seqs["d2"]!)?.pairs.first?.waitingOn == seqs["d0"])
        }
        await made.remove()
    }

    /// `max_rate`: a rated handler's pairs start at least its interval apart, store-wide; other
    /// handlers' pairs are not held.
    @Test(arguments: StoreEngine.all) func aRatedHandlerStartsItsPairsAnIntervalApart(engine: StoreEngine) async throws {
        let time = TestClock()
        let made = try await engine.make(clock: time.clock)
        let store = made.store
        for index in 0..<3 {
            let delivery = InboxDelivery(
                source: "x", id: "d\(index)", type: "t", receivedAt: Date(timeIntervalSinceNow: -60), headers: [:], body: [], handlers: ["x/a.lua", "x/b.lua"])
            _ = try await store.append(delivery, retention: Self.week, claimed: false, lease: .seconds(30))
        }
        let intervals: [String: Duration] = ["x/a.lua": .seconds(1)]
        func claim() async throws -> [String] {
            try await store.claim(candidates: 100, lease: .seconds(30), intervals: intervals) { $0 }.map { "\($0.handler) \($0.delivery.id)" }.sorted()
        }
        #expect(try await claim() == ["x/a.lua d0", "x/b.lua d0", "x/b.lua d1", "x/b.lua d2"])
        #expect(try await claim() == [], "a second start within the interval")
        time.advance(by: .milliseconds(999))
        #expect(try await claim() == [])
        time.advance(by: .milliseconds(1))
        #expect(try await claim() == ["x/a.lua d1"])
        time.advance(by: .seconds(5))
        #expect(try await claim() == ["x/a.lua d2"], "a quiet spell does not let a burst through")
        await made.remove()
    }
}
