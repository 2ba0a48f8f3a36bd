import AsyncHTTPClient
import Foundation
import Logging
import MoonhookStore
import MoonhookTestSupport
import NIOCore
import Testing

/// A backlog waits in the store, not in the server's memory: the dispatcher holds the deliveries
/// its slots run and nothing more, however many are queued behind them.
@Suite("Memory under a backlog", .serialized)
struct BacklogMemoryTests {
    /// Resident memory of a process, in bytes, from /proc.
    static func residentBytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw StoreError(.database, "no VmRSS in /proc/\(pid)/status") }
        return kilobytes * 1024
    }

    /// Stores `count` deliveries of 8 KiB each for a handler that sleeps 200 ms, serves them with
    /// four slots, and returns the server's resident memory once every slot runs (the highest of
    /// several samples), with the number of pairs still waiting then.
    static func residentWhileServing(backlog count: Int) async throws -> (bytes: Int, waiting: Int) {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write("s/slow.lua", "return function(e) time.sleep(200) end")
        let path = handlers.folder.appending(path: "state.sqlite").path
        let store = try await openStore(path, logger: Logger(label: "test"))
        let body = Array(#"{"type":"slow","pad":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 8 * 1024) + Array(#""}"#.utf8)
        for start in stride(from: 0, to: count, by: 500) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in start..<min(start + 500, count) {
                    group.addTask {
                        _ = try await store.append(
                            InboxDelivery(source: "s", id: "d\(index)", type: "slow", receivedAt: Date(), headers: [:], body: body, handlers: ["s/slow.lua"]),
                            retention: .seconds(86_400), claimed: false, lease: .seconds(30))
                    }
                }
                try await group.waitForAll()
            }
        }
        await store.close()
        let config = handlers.folder.appending(path: "moonhook.yaml").path
        try "max_concurrent_invocations: 4\nadmin_token: t\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try MoonhookProcess(
            ["serve", "--config", config, "--handlers", handlers.folder.path, "--listen", "127.0.0.1:0", "--store", "sqlite:" + path],
            environment: ["MOONHOOK_LOG_LEVEL": "notice"])
        defer {
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
        }
        let logs = LogLines(server.stderr)
        let address = try #require(await logs.first("moonhook listening")?["address"], "\(logs.all)")
        var highest = 0
        var waiting = 0
        var busiest = 0
        for _ in 0..<8 {
            try await Task.sleep(for: .milliseconds(250))
            let stats = try await adminStats(address)
            busiest = max(busiest, (stats["dispatcher"] as? [String: Any])?["in_flight"] as? Int ?? 0)
            waiting = ((stats["pairs"] as? [String: Any])?["pending"] as? Int) ?? 0
            highest = max(highest, try residentBytes(server.process.processIdentifier))
        }
        // Sampled: a slot between two pairs shows as free.
        #expect(busiest >= 3, "the slots were not running: at most \(busiest) of 4 at once")
        return (highest, waiting)
    }

    static func adminStats(_ address: String) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: "http://\(address)/admin/stats")
        request.headers.add(name: "Authorization", value: "Bearer t")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])
    }

    /// Ten times the backlog (78 MiB more bodies queued) costs the server no more than a few MiB.
    @Test func memoryFollowsTheSlotsNotTheBacklog() async throws {
        let small = try await Self.residentWhileServing(backlog: 1_000)
        let large = try await Self.residentWhileServing(backlog: 10_000)
        #expect(small.waiting > 500 && large.waiting > 9_000, "the backlogs drained: \(small.waiting), \(large.waiting)")
        let grown = large.bytes - small.bytes
        print("resident with 1,000 queued: \(small.bytes >> 20) MiB; with 10,000 queued: \(large.bytes >> 20) MiB")
        #expect(grown < 16 << 20, "with 9,000 more deliveries queued the server held \(grown >> 20) MiB more (\(small.bytes >> 20) → \(large.bytes >> 20) MiB)")
    }
}
