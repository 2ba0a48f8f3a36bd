import Foundation
@testable import Moonhook
import Testing

/// The live feed's queues on their own: order, the drop count, waiting, ending.
@Suite("Live feed")
struct LiveFeedTests {
    static func event(_ id: String, source: String = "s") -> LiveEvent {
        var event = LiveEvent(kind: .log, source: source, deliveryID: id)
        event.handler = "\(source)/a.lua"
        event.level = .info
        event.message = "line \(id)"
        return event
    }

    static func ids(_ batch: LiveQueue.Batch?) -> [String] {
        (batch?.frames ?? []).compactMap { frame in
            let text = String(decoding: frame, as: UTF8.self)
            return text.range(of: #""delivery_id":""#).map { String(text[$0.upperBound...].prefix { $0 != "\"" }) }
        }
    }

    @Test func eventsArriveInOrderOnlyForTheirReaders() async {
        let feed = LiveFeed(queueSize: 8)
        #expect(!feed.hasReaders)
        feed.publish(Self.event("before"))
        let (queue, end) = feed.subscribe(LiveFilter(source: "s"))
        #expect(feed.hasReaders)
        for id in ["1", "2", "3"] { feed.publish(Self.event(id)) }
        feed.publish(Self.event("other", source: "t"))
        let batch = await queue.next()
        #expect(Self.ids(batch) == ["1", "2", "3"], "events before subscribing or of another source came along")
        #expect(batch?.dropped == 0)
        end()
        #expect(!feed.hasReaders)
        #expect(await queue.next() == nil, "an ended queue still gave something")
    }

    @Test func aFullQueueCountsWhatItDropsAndNotItsHeartbeats() async {
        let feed = LiveFeed(queueSize: 2)
        let (queue, end) = feed.subscribe(LiveFilter())
        defer { end() }
        for id in ["1", "2", "3", "4", "5"] { feed.publish(Self.event(id)) }
        queue.heartbeat()
        let batch = await queue.next()
        #expect(Self.ids(batch) == ["1", "2"])
        #expect(batch?.dropped == 3, "the heartbeat was counted, or a drop was not")
        feed.publish(Self.event("6"))
        let next = await queue.next()
        #expect(Self.ids(next) == ["6"] && next?.dropped == 0)
    }

    @Test func aWaitingReaderWakesForAnEventAndEndsWhenFinishedOrCancelled() async throws {
        let feed = LiveFeed()
        let (queue, end) = feed.subscribe(LiveFilter())
        let waiting = Task { await queue.next() }
        try await Task.sleep(for: .milliseconds(100))
        feed.publish(Self.event("late"))
        #expect(Self.ids(await waiting.value) == ["late"])

        let finished = Task { await queue.next() }
        try await Task.sleep(for: .milliseconds(100))
        end()
        #expect(await finished.value == nil)
        feed.publish(Self.event("after"))
        #expect(await queue.next() == nil, "an event after the end was queued")

        let (other, endOther) = feed.subscribe(LiveFilter())
        defer { endOther() }
        let cancelled = Task { await other.next() }
        try await Task.sleep(for: .milliseconds(100))
        cancelled.cancel()
        #expect(await cancelled.value == nil)
    }

    @Test func aFrameIsOneEventLineAndOneLineOfJSON() throws {
        var event = Self.event("d-1")
        event.message = "two\nlines \"quoted\" é"
        event.fields = ["b": "2", "a": "1"]
        let text = String(decoding: event.frame, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4 && lines[0] == "event: log" && lines[1].hasPrefix("data: {") && lines[2].isEmpty && lines[3].isEmpty, "\(text)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].dropFirst(6).utf8)) as? [String: Any])
        #expect(object["message"] as? String == "two\nlines \"quoted\" é")
        #expect(object["fields"] as? [String: String] == ["a": "1", "b": "2"])
        #expect(object["delivery_id"] as? String == "d-1" && object["kind"] as? String == "log")
    }
}
