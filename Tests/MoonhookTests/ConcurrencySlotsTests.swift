import Testing

@testable import Moonhook

/// The dispatcher's slot accounting on its own: the three limits, and a slot given back going to
/// the first waiter it fits, before anything else can take it.
@Suite("Concurrency slots")
struct ConcurrencySlotsTests {
    typealias Slots = ConcurrencySlots<String>

    @Test func theServersTheSourcesAndTheHandlersLimitsHold() {
        var slots = Slots(maxConcurrent: 3)
        let one = Slots.Limits(source: nil, handler: 1)
        let shared = Slots.Limits(source: 2, handler: nil)
        let taken = [
            slots.take(source: "a", handler: "a/x.lua", limits: one),
            slots.take(source: "a", handler: "a/x.lua", limits: one),  // the handler's one slot is taken
            slots.take(source: "b", handler: "b/y.lua", limits: shared),
            slots.take(source: "b", handler: "b/z.lua", limits: shared),
            slots.take(source: "b", handler: "b/y.lua", limits: shared),  // the source's two are taken
            slots.take(source: "c", handler: "c/w.lua", limits: Slots.Limits()),  // the server's three are taken
        ]
        #expect(taken == [true, false, true, true, false, false])
        #expect(slots.free == 0)
        let woken = slots.give(source: "b", handler: "b/y.lua")
        #expect(woken.isEmpty)
        let again = slots.take(source: "c", handler: "c/w.lua", limits: Slots.Limits())
        #expect(again)
    }

    @Test func aSlotGivenBackGoesToTheFirstWaiterItFits() {
        var slots = Slots(maxConcurrent: 2)
        let one = Slots.Limits(source: nil, handler: 1)
        _ = slots.take(source: "a", handler: "a/x.lua", limits: one)
        _ = slots.take(source: "b", handler: "b/y.lua", limits: Slots.Limits())
        _ = slots.wait(source: "a", handler: "a/x.lua", limits: one, ticket: "x waits")
        let gone = slots.wait(source: "c", handler: "c/z.lua", limits: Slots.Limits(), ticket: "z gave up")
        _ = slots.wait(source: "c", handler: "c/w.lua", limits: Slots.Limits(), ticket: "w waits")
        let abandoned = slots.abandon(gone)
        #expect(abandoned == "z gave up")
        // b's slot fits w but not x, which waits for a/x.lua's own slot.
        let first = slots.give(source: "b", handler: "b/y.lua")
        #expect(first == ["w waits"])
        #expect(slots.free == 0)
        let second = slots.give(source: "a", handler: "a/x.lua")
        #expect(second == ["x waits"])
        let stolen = slots.take(source: "a", handler: "a/x.lua", limits: one)
        #expect(!stolen, "the waiter's slot was taken from under it")
        let late = slots.abandon(gone)
        #expect(late == nil)
    }

    /// Pairs running in other processes sharing the store count against a source's and a
    /// handler's limits, not against the server's own.
    @Test func whatRunsElsewhereCountsAgainstSourceAndHandlerLimits() {
        var slots = Slots(maxConcurrent: 4)
        let limited = Slots.Limits(source: 3, handler: 1)
        let taken = [
            slots.take(source: "a", handler: "a/x.lua", limits: limited, elsewhere: .init(source: 0, handler: 1)),  // the handler's one slot is taken elsewhere
            slots.take(source: "a", handler: "a/y.lua", limits: limited, elsewhere: .init(source: 3, handler: 0)),  // the source's three are taken elsewhere
            slots.take(source: "a", handler: "a/y.lua", limits: limited, elsewhere: .init(source: 2, handler: 0)),
            slots.take(source: "a", handler: "a/z.lua", limits: limited, elsewhere: .init(source: 2, handler: 0)),  // two elsewhere, one here: three
            slots.take(source: "b", handler: "b/w.lua", limits: Slots.Limits(), elsewhere: .init(source: 50, handler: 50)),  // no limits
        ]
        #expect(taken == [false, false, true, false, true])
        let held = slots.held(source: "a", handler: "a/y.lua")
        #expect(held.source == 1 && held.handler == 1)
    }
}
