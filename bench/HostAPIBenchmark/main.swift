// Host API benchmark: kv and http from handlers, against the same operations called from Swift
// directly in the same run, plus 10,000 invocations suspended on a slow outbound call.
//
//   swift build -c release --product HostAPIBenchmark && .build/release/HostAPIBenchmark
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import LuaRuntime
import Moonhook
import MoonhookStore
import NIOCore
import Synchronization

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    return (Int(text.split(separator: " ")[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Runs `count` operations, `concurrency` at a time; returns operations per second.
func rate(count: Int, concurrency: Int, _ operation: @escaping @Sendable () async throws -> Void) async throws -> Double {
    let clock = ContinuousClock()
    let started = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        let perTask = count / concurrency
        for _ in 0..<concurrency {
            group.addTask { for _ in 0..<perTask { try await operation() } }
        }
        try await group.waitForAll()
    }
    let elapsed = clock.now - started
    return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

/// Holds requests to /slow until released.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>], arrived: Int)>((false, [], 0))
    var arrived: Int { state.withLock { $0.arrived } }
    func pass() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state -> Bool in
                state.arrived += 1
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }
    func open() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}

let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
let folder = FileManager.default.temporaryDirectory.appending(path: "moonhook-bench-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: folder) }
let store = try await SQLiteStore.open(path: folder.appending(path: "bench.sqlite").path, logger: logger)
var clientConfiguration = HTTPClient.Configuration(redirectConfiguration: .disallow)
clientConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
var policy = OutboundPolicy()
policy.allowedRanges = [IPRange("127.0.0.1")!]
var limits = LuaLimits()
limits.memoryBytes = 1 << 30
limits.wallClock = .seconds(120)
policy.defaultTimeout = .seconds(120)
let services = HostServices(logger: logger, limits: limits, store: store, httpClient: client, outbound: policy)
let pool = try WorkerPool(count: 2, services: services)

let handlersFolder = folder.appending(path: "handlers/bench")
try FileManager.default.createDirectory(at: handlersFolder, withIntermediateDirectories: true)
try "scheme: none\n".write(to: handlersFolder.appending(path: "source.yaml"), atomically: true, encoding: .utf8)
let gate = Gate()
let router = Router()
router.get("/ok") { _, _ in "ok" }
router.get("/slow") { _, _ in
    await gate.pass()
    return "late"
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))

let report = try await app.test(.live) { testClient -> String in
    let port = testClient.port!
    for (name, code) in [
        ("incr", "return function() return kv.incr('n') end"),
        ("get", "return function() return kv.get('n') end"),
        ("call", "return function() return http.get('http://127.0.0.1:\(port)/ok').status end"),
        ("slow", "return function() return http.get('http://127.0.0.1:\(port)/slow').status end"),
    ] {
        try code.write(to: handlersFolder.appending(path: "\(name).lua"), atomically: true, encoding: .utf8)
    }
    let catalog = await SourceCatalog.load(folder: folder.appending(path: "handlers").path, pool: pool, environment: [:])
    precondition(catalog.problems.isEmpty, "\(catalog.problems)")
    let handlers = Dictionary(uniqueKeysWithValues: catalog.sources["bench"]!.handlers.map { ($0.name, $0) })
    @Sendable func invoke(_ name: String) async throws {
        let context = HandlerContext(source: "bench", logger: logger)
        let outcome = await pool.invoke(handlers[name]!, arguments: [], info: LuaInvocationInfo(handlerPath: name, context: context))
        if let error = outcome.error { throw error }
    }
    let url = "http://127.0.0.1:\(port)/ok"

    var lines: [String] = []
    func line(_ name: String, _ value: String) { lines.append(name.padding(toLength: 60, withPad: " ", startingAt: 0) + value) }

    _ = try await rate(count: 2000, concurrency: 32) { try await invoke("incr") }  // warm-up
    let incr = try await rate(count: 20_000, concurrency: 64) { try await invoke("incr") }
    let incrPeer = try await rate(count: 20_000, concurrency: 64) { _ = try await store.increment("bench", "peer", by: 1, ttl: nil) }
    let get = try await rate(count: 20_000, concurrency: 64) { try await invoke("get") }
    let getPeer = try await rate(count: 20_000, concurrency: 64) { _ = try await store.get("bench", "n") }
    _ = try await rate(count: 1000, concurrency: 32) { try await invoke("call") }  // warm-up
    let call = try await rate(count: 10_000, concurrency: 32) { try await invoke("call") }
    let callPeer = try await rate(count: 10_000, concurrency: 32) {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1024)
    }
    line("kv.incr from a handler (SQLite, 64 at once)", String(format: "%.0f /s", incr))
    line("  peer: SQLiteStore.increment from Swift", String(format: "%.0f /s  (handler/peer = %.2f)", incrPeer, incr / incrPeer))
    line("kv.get from a handler (SQLite, 64 at once)", String(format: "%.0f /s", get))
    line("  peer: SQLiteStore.get from Swift", String(format: "%.0f /s  (handler/peer = %.2f)", getPeer, get / getPeer))
    line("handler making one http.get to a local server (32 at once)", String(format: "%.0f /s", call))
    line("  peer: AsyncHTTPClient GET from Swift", String(format: "%.0f /s  (handler/peer = %.2f)", callPeer, call / callPeer))

    // 10,000 invocations waiting on a call the server holds until all have started.
    let suspended = 10_000
    let before = residentBytes()
    let memoryBefore = await pool.workers[0].memoryUsed + pool.workers[1].memoryUsed
    let clock = ContinuousClock()
    let started = clock.now
    let waiting = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<suspended { group.addTask { try await invoke("slow") } }
            try await group.waitForAll()
        }
    }
    while gate.arrived < 64 { try await Task.sleep(for: .milliseconds(20)) }
    try await Task.sleep(for: .seconds(2))
    let rss = residentBytes() - before
    let luaHeap = await pool.workers[0].memoryUsed + pool.workers[1].memoryUsed - memoryBefore
    gate.open()
    try await waiting.value
    let total = clock.now - started
    line("\(suspended) invocations suspended on a slow http.get, extra RSS", String(format: "%.1f MiB  (%.1f KiB each; Lua heap %.1f MiB)", Double(rss) / 1048576, Double(rss) / Double(suspended) / 1024, Double(luaHeap) / 1048576))
    line("  all \(suspended) completed once the server answered", "\(total.components.seconds) s in all (64 connections)")
    return lines.joined(separator: "\n")
}
print("Host APIs (release build, 2 Lua workers, one process)")
print(report)
pool.shutdown()
try await client.shutdown()
await store.close()
