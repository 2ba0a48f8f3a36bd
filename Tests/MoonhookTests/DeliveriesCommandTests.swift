import Foundation
import MoonhookStore
import MoonhookTestSupport
import Testing

/// `moonhook deliveries` on a store, as an operator runs it: an SQLite file and a PostgreSQL database.
@Suite("moonhook deliveries", .serialized)
struct DeliveriesCommandTests {
    @Test(arguments: StoreEngine.all) func listShowReplayPurge(engine: StoreEngine) async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        let location = try await engine.location(in: handlers.folder)
        let store = try await StoreLocation(location).open(logger: LogRecords().logger())
        for (id, source) in [("ok-1", "a"), ("bad-1", "a"), ("other-1", "b")] {
            let delivery = InboxDelivery(
                source: source, id: id, type: "t", receivedAt: Date(), headers: ["x-sig": "v1"], body: Array(#"{"type":"t","n":1}"#.utf8),
                handlers: ["\(source)/t.lua"])
            _ = try await store.append(delivery, retention: .seconds(3600), claimed: false, lease: .seconds(30))
        }
        let record = AttemptRecord(startedAt: Date(), finishedAt: Date(), logs: [AttemptLogLine(level: .error, message: "upstream said no")])
        for pair in try await store.claim(candidates: 10, lease: .seconds(30), choose: { $0 }) {
            let outcome: PairOutcome = pair.delivery.id == "bad-1" ? .dead(error: "a/t.lua:3: upstream 500") : .done
            #expect(try await store.finish(pair, outcome: outcome, record: record))
        }
        await store.close()
        let flags = ["--store", location]

        let all = try MoonhookProcess.run(["deliveries", "list"] + flags)
        #expect(all.status == 0, "\(all.err)")
        #expect(all.out.split(separator: "\n").count == 4, "\(all.out)")
        let dead = try MoonhookProcess.run(["deliveries", "list", "--status", "dead"] + flags)
        #expect(dead.out.contains("bad-1") && !dead.out.contains("ok-1"), "\(dead.out)")
        #expect(dead.out.contains("dead:1"))
        let onlyB = try MoonhookProcess.run(["deliveries", "list", "--source", "b", "--json"] + flags)
        let line = try #require(try JSONSerialization.jsonObject(with: Data(onlyB.out.utf8)) as? [String: Any])
        #expect(line["id"] as? String == "other-1")

        let shown = try MoonhookProcess.run(["deliveries", "show", "bad-1"] + flags)
        #expect(shown.status == 0, "\(shown.err)")
        let detail = try #require(try JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [String: Any])
        #expect((detail["headers"] as? [String: String])?["x-sig"] == "v1")
        #expect((detail["body"] as? [String: Any])?["n"] as? Int == 1)
        let attempts = try #require(detail["attempts"] as? [[String: Any]])
        #expect(attempts.first?["error"] as? String == "a/t.lua:3: upstream 500")
        #expect(((attempts.first?["logs"] as? [[String: Any]])?.first?["message"]) as? String == "upstream said no")
        let unknown = try MoonhookProcess.run(["deliveries", "show", "nope"] + flags)
        #expect(unknown.status != 0)
        #expect(unknown.err.contains("no delivery with id 'nope'"))

        let replayed = try MoonhookProcess.run(["deliveries", "replay", "--status", "dead", "--source", "a"] + flags)
        #expect(replayed.status == 0, "\(replayed.err)")
        #expect(replayed.out.contains("replaying 1 delivery"))
        #expect(try MoonhookProcess.run(["deliveries", "list", "--status", "pending"] + flags).out.contains("bad-1"))
        #expect(try MoonhookProcess.run(["deliveries", "replay", "1"] + flags).out.contains("replaying 1 delivery"))

        let purged = try MoonhookProcess.run(["deliveries", "purge", "--older-than", "0s"] + flags)
        #expect(purged.status == 0, "\(purged.err)")
        #expect(purged.out.contains("purged 3 deliveries"))
        #expect(try MoonhookProcess.run(["deliveries", "list"] + flags).out.split(separator: "\n").count == 1)
        let missing = try MoonhookProcess.run(["deliveries", "list", "--store", "sqlite:/nonexistent/x.sqlite"])
        #expect(missing.status != 0)
        #expect(missing.err.contains("no store at /nonexistent/x.sqlite"))
    }
}
