// Measures the Lua runtime against its peers in the same run and prints ratios.
//
//   swift build -c release --product LuaRuntimeBenchmark && .build/release/LuaRuntimeBenchmark
//
// 1. A trivial handler invoked with a 300-byte JSON event (host JSON decode + new coroutine +
//    resume + result), timed inside the worker's isolation, against two peers: decoding the same
//    bytes with Foundation's JSONSerialization alone, and a bare lua_pcall of the same function on
//    an unsandboxed state with the event table already built.
// 2. The same handler making one host call that yields and is resumed, against one that makes a
//    synchronous host call: the difference is the cost of a yielding call.
// 3. 10,000 invocations suspended at once in one worker: the RSS they add, against 10,000 bare
//    coroutines (lua_newthread) on a plain state.
import AsyncHTTPClient
import CLua
import Foundation
import Logging
import LuaRuntime
import Moonhook
import MoonhookStore

let body = Array(#"{"type":"agent.task.status_update","timestamp":"2025-01-15T10:30:00Z","payload":{"taskId":"task_abc123def456","status":"finished","sessionId":"session_xyz789","output":"Found 3 results for the query; the cheapest flight leaves at 07:15 and costs 129 EUR.","steps":12,"cost":0.0421,"tags":["travel","search"]}}"#.utf8)
let handlerSource = Array("return function(event) return event.body.payload.status end".utf8)
let samples = 20_000

func event(_ raw: [UInt8]) -> LuaValue {
    HandlerEvent(id: "d-1", source: "browser-use", type: "agent.task.status_update", headers: ["content-type": "application/json"], raw: raw).luaValue
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

func microseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Times `samples` invocations one by one inside the worker's isolation (no actor hop per call).
func timeInvocations(on worker: isolated LuaWorker, _ handler: LuaHandler, argument: LuaValue) async -> [Double] {
    let clock = ContinuousClock()
    var times: [Double] = []
    times.reserveCapacity(samples)
    let info = LuaInvocationInfo(handlerPath: handler.path)
    for _ in 0..<samples {
        let start = clock.now
        let outcome = await worker.invoke(handler, arguments: [argument], info: info)
        times.append(microseconds(clock.now - start))
        precondition(outcome.error == nil, "\(outcome.error!)")
    }
    return times
}

/// Starts `count` invocations at once and returns how many succeeded.
func invokeConcurrently(_ worker: LuaWorker, _ handler: LuaHandler, argument: LuaValue, count: Int) async -> Int {
    await withTaskGroup(of: Bool.self) { group in
        for _ in 0..<count {
            group.addTask {
                await worker.invoke(handler, arguments: [argument], info: LuaInvocationInfo(handlerPath: handler.path)).error == nil
            }
        }
        var succeeded = 0
        for await ok in group where ok { succeeded += 1 }
        return succeeded
    }
}

func parkTasks(_ parking: Parking, count: Int) async {
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<count { group.addTask { await parking.park() } }
    }
}

func bareLuaTimes() -> [Double] {
    let L = luaL_newstate()!
    defer { lua_close(L) }
    luaL_openlibs(L)
    let source = "return function(event) return event.body.payload.status end"
    precondition(clua_loadbuffer(L, source, source.utf8.count, "=bare") == LUA_OK)
    precondition(clua_pcall(L, 0, 1, 0) == LUA_OK)
    let function = clua_ref(L)
    // The event table, built once (the peer does no decoding).
    precondition(clua_loadbuffer(L, "return {body = {payload = {status = 'finished', taskId = 'task_abc123def456'}}}", 79, "=event") == LUA_OK)
    precondition(clua_pcall(L, 0, 1, 0) == LUA_OK)
    let eventRef = clua_ref(L)
    let clock = ContinuousClock()
    var times: [Double] = []
    for _ in 0..<samples {
        let start = clock.now
        clua_getref(L, function)
        clua_getref(L, eventRef)
        precondition(clua_pcall(L, 1, 1, 0) == LUA_OK)
        clua_pop(L, 1)
        times.append(microseconds(clock.now - start))
    }
    return times
}

func foundationDecodeTimes() -> [Double] {
    let data = Data(body)
    let clock = ContinuousClock()
    var times: [Double] = []
    for _ in 0..<samples {
        let start = clock.now
        let object = try! JSONSerialization.jsonObject(with: data)
        times.append(microseconds(clock.now - start))
        precondition(object is [String: Any])
    }
    return times
}

/// Host functions for the benchmark: a synchronous one, one that yields and returns at once, and
/// one that parks the coroutine until `release` is called.
final class Parking: @unchecked Sendable {
    // @unchecked: `waiters` is only touched with `lock` held.
    private let lock = NSLock()
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var released = false

    func park() async {
        await withCheckedContinuation { continuation in
            lock.lock()
            if released {
                lock.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return waiters.count
    }

    func release() {
        lock.lock()
        released = true
        let all = waiters
        waiters = []
        lock.unlock()
        for waiter in all { waiter.resume() }
    }
}

if CommandLine.arguments.contains("--tasks-peer") {
    let taskParking = Parking()
    let before = residentBytes()
    let parked = Task { await parkTasks(taskParking, count: 10_000) }
    while taskParking.count < 10_000 { try await Task.sleep(for: .milliseconds(10)) }
    print(residentBytes() - before)
    taskParking.release()
    await parked.value
    exit(0)
}

let parking = Parking()
var benchLibrary = LuaLibrary(name: "bench")
benchLibrary.function("sync") { call in try call.returning(.integer(1)) }
benchLibrary.function("yield") { _ in .suspend { _ in [.integer(1)] } }
benchLibrary.function("park") { _ in
    .suspend { _ in
        await parking.park()
        return []
    }
}

let logger = Logger(label: "bench")
var limits = LuaLimits()
limits.memoryBytes = 1 << 30
let worker = try LuaWorker(libraries: HandlerRuntime.libraries(HostServices(logger: logger, limits: limits, store: MemoryKeyValueStore(), httpClient: HTTPClient.shared, outbound: OutboundPolicy())) + [benchLibrary], limits: limits)
let trivial = try await worker.load(path: "bench/trivial.lua", source: handlerSource)
let syncCall = try await worker.load(path: "bench/sync.lua", source: Array("return function(event) bench.sync() return event.body.payload.status end".utf8))
let yieldingCall = try await worker.load(path: "bench/yield.lua", source: Array("return function(event) bench.yield() return event.body.payload.status end".utf8))
let parked = try await worker.load(path: "bench/park.lua", source: Array("return function(event) bench.park() return event.body.payload.status end".utf8))
let hundredCalls = try await worker.load(path: "bench/sync100.lua", source: Array("return function(event) for i = 1, 100 do bench.sync() end return event.body.payload.status end".utf8))
let argument = event(body)

// Suspended invocations, measured first: RSS growth means most before other phases have grown
// and freed the heap.
let suspendedCount = 10_000
let before = residentBytes()
let memoryBefore = await worker.memoryUsed
let results = Task { await invokeConcurrently(worker, parked, argument: argument, count: suspendedCount) }
while parking.count < suspendedCount { try await Task.sleep(for: .milliseconds(10)) }
let suspendedRSS = residentBytes() - before
let suspendedLuaBytes = await worker.memoryUsed - memoryBefore
parking.release()
let completed = await results.value
precondition(completed == suspendedCount)

// Peer: the same number of Swift tasks parked on a continuation, with no Lua at all, measured in a
// process of its own so that neither measurement reuses memory the other freed.
let tasksRSS: Int = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    process.arguments = ["--tasks-peer"]
    let output = Pipe()
    process.standardOutput = output
    try? process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}()

// Warm up.
_ = await timeInvocations(on: worker, trivial, argument: argument)

// Each scenario runs once per round, interleaved, so that drift of the machine hits all of them alike;
// the figure is the median of the per-round medians.
let rounds = 5
var roundMedians: [String: [Double]] = [:]
for _ in 0..<rounds {
    roundMedians["trivial", default: []].append(median(await timeInvocations(on: worker, trivial, argument: argument)))
    roundMedians["bare", default: []].append(median(bareLuaTimes()))
    roundMedians["foundation", default: []].append(median(foundationDecodeTimes()))
    roundMedians["sync", default: []].append(median(await timeInvocations(on: worker, syncCall, argument: argument)))
    roundMedians["hundred", default: []].append(median(await timeInvocations(on: worker, hundredCalls, argument: argument)))
    roundMedians["yield", default: []].append(median(await timeInvocations(on: worker, yieldingCall, argument: argument)))
}
let trivialMedian = median(roundMedians["trivial"]!)
let bareMedian = median(roundMedians["bare"]!)
let foundationMedian = median(roundMedians["foundation"]!)
let syncMedian = median(roundMedians["sync"]!)
let hundredMedian = median(roundMedians["hundred"]!)
let yieldMedian = median(roundMedians["yield"]!)

let bareBefore = residentBytes()
let plain = luaL_newstate()!
for _ in 0..<suspendedCount {
    lua_newthread(plain)
    _ = clua_ref(plain)
}
let bareThreadsRSS = residentBytes() - bareBefore
lua_close(plain)

func line(_ name: String, _ value: String) { print(name.padding(toLength: 58, withPad: " ", startingAt: 0) + value) }
print("Lua runtime (release build; medians of \(rounds) interleaved rounds of \(samples) samples)")
line("trivial invocation, 300-byte JSON event", String(format: "%.2f µs", trivialMedian))
line("  peer: Foundation JSONSerialization decode only", String(format: "%.2f µs  (moonhook/peer = %.2f)", foundationMedian, trivialMedian / foundationMedian))
line("  peer: bare lua_pcall, event prebuilt, no sandbox", String(format: "%.2f µs  (moonhook/peer = %.2f)", bareMedian, trivialMedian / bareMedian))
line("invocation with one synchronous host call", String(format: "%.2f µs", syncMedian))
line("one synchronous host call (from 100 in one invocation)", String(format: "%.3f µs", (hundredMedian - trivialMedian) / 100))
line("invocation with one yielding host call", String(format: "%.2f µs  (adds %.2f µs)", yieldMedian, yieldMedian - syncMedian))
line("\(suspendedCount) suspended invocations, extra RSS", String(format: "%.1f MiB  (%.0f bytes each; Lua heap %.1f MiB)", Double(suspendedRSS) / 1048576, Double(suspendedRSS) / Double(suspendedCount), Double(suspendedLuaBytes) / 1048576))
line("  peer: \(suspendedCount) Swift tasks parked, no Lua, extra RSS", String(format: "%.1f MiB  (moonhook/peer = %.1f)", Double(tasksRSS) / 1048576, Double(suspendedRSS) / Double(max(tasksRSS, 1))))
line("  peer: \(suspendedCount) bare lua_newthread, extra RSS", String(format: "%.1f MiB  (moonhook/peer = %.1f)", Double(bareThreadsRSS) / 1048576, Double(suspendedRSS) / Double(max(bareThreadsRSS, 1))))
worker.shutdown()
