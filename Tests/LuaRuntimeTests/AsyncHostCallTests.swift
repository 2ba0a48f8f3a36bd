import LuaRuntime
import Testing

@Suite("Invocations as coroutines")
struct AsyncHostCallTests {
    @Test func asyncResultsReachTheScript() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call("local t = test.values(3) return #t, t[3], t.name, test.sleep(5)", on: worker)
        #expect(try outcome.result.get() == [.integer(3), .integer(3), .string("values"), .integer(5)])
    }

    @Test func asyncFailuresAreCatchableLuaErrors() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let caught = await Harness.call("local ok, err = pcall(function() local r = test.fail() return r end) return ok, err", on: worker)
        #expect(try caught.result.get() == [.boolean(false), .string("test/case.lua:2: the operation failed")])
        let uncaught = await Harness.call("test.fail()", on: worker)
        #expect(uncaught.error?.message == "test/case.lua:2: the operation failed")
    }

    /// 1,000 invocations that each wait 100 ms on one worker overlap instead of queueing: run one
    /// after another they would take 100 s. The bound is loose on purpose; the benchmark measures.
    @Test func thousandSleepingInvocationsOverlapOnOneWorker() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let handler = try await worker.load(path: "test/sleep.lua", source: Array("return function() return test.sleep(100) end".utf8))
        let clock = ContinuousClock()
        let started = clock.now
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<1000 {
                group.addTask {
                    let outcome = await worker.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path))
                    return (try? outcome.result.get()) == [.integer(100)]
                }
            }
            return await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        let elapsed = clock.now - started
        #expect(results == 1000)
        #expect(elapsed < .seconds(10), "took \(elapsed)")
    }

    @Test func workArrivingAfterShutdownStillRuns() async throws {
        let worker = try Harness.worker()
        #expect(await Harness.stillServes(worker))
        worker.shutdown()
        try await Task.sleep(for: .milliseconds(50))  // let the thread end
        #expect(await Harness.stillServes(worker))
        worker.shutdown()
    }

    @Test func deadlineCoversTimeSpentWaiting() async throws {
        var limits = LuaLimits.testing
        limits.wallClock = .milliseconds(200)
        let worker = try Harness.worker(limits: limits)
        defer { worker.shutdown() }
        let outcome = await Harness.call("test.sleep(5000) return 'woke'", on: worker)
        #expect(outcome.error?.reason == .deadline)
        #expect(outcome.error?.message.contains("deadline exceeded (200 ms)") == true)
        #expect(await Harness.stillServes(worker))
    }

    @Test func deadlineStopsBusyCode() async throws {
        var limits = LuaLimits.testing
        limits.instructions = .max
        limits.wallClock = .milliseconds(100)
        let worker = try Harness.worker(limits: limits)
        defer { worker.shutdown() }
        let outcome = await Harness.call("local n = 0\nwhile true do n = n + 1 end", on: worker)
        #expect(outcome.error?.reason == .deadline)
        #expect(outcome.error?.message == "test/case.lua:3: deadline exceeded (100 ms)")
    }

    @Test func handlerTimeoutOptionOverridesTheDefault() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.run("return {timeout = 0.1, handle = function() test.sleep(3000) end}", on: worker)
        #expect(outcome.error?.message.contains("deadline exceeded (100 ms)") == true)
    }

    @Test func aKilledInvocationDoesNotDisturbSuspendedOnes() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let sleeper = try await worker.load(path: "test/sleeper.lua", source: Array("return function() local n = test.sleep(200) return n + 1 end".utf8))
        let looper = try await worker.load(path: "test/looper.lua", source: Array("return function() while true do end end".utf8))
        async let slept = worker.invoke(sleeper, arguments: [], info: LuaInvocationInfo(handlerPath: sleeper.path))
        let looped = await worker.invoke(looper, arguments: [], info: LuaInvocationInfo(handlerPath: looper.path))
        #expect(looped.error?.reason == .instructionLimit)
        #expect(try await slept.result.get() == [.integer(201)])
    }
}

@Suite("Loading handlers")
struct LoadingTests {
    @Test func syntaxErrorsNameFileAndLine() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.run("return function(event)\n  local x = = 1\nend", path: "induced/broken.lua", on: worker)
        #expect(outcome.error?.reason == .syntax)
        #expect(outcome.error?.message == "induced/broken.lua:2: unexpected symbol near '='")
    }

    @Test func runtimeErrorsNameFileAndLine() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.run("return function(event)\n\n  error('boom')\nend", path: "browser-use/test.lua", on: worker)
        #expect(outcome.error?.message == "browser-use/test.lua:3: boom")
        let indexing = await Harness.run("return function(event)\n  return event.body.payload\nend", path: "browser-use/x.lua", arguments: [.table(array: [], fields: [:])], on: worker)
        #expect(indexing.error?.message == "browser-use/x.lua:2: attempt to index a nil value (field 'body')")
    }

    @Test func topLevelIsLimitedToo() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.run("local n = 0\nwhile true do n = n + 1 end", path: "x/loop.lua", on: worker)
        #expect(outcome.error?.reason == .instructionLimit)
        #expect(outcome.error?.message == "x/loop.lua:2: instruction limit exceeded (5000000 instructions)")
    }

    @Test(arguments: [
        ("return 42", "must return a function or a table"),
        ("return {}", "has no 'handle' function"),
        ("return {handle = function() end, on = 5}", "'on' must be a string or a list of strings"),
        ("return {handle = function() end, timeout = -1}", "'timeout' must be a positive number"),
        ("return {handle = function() end, retries = 'x'}", "'retries' must be a whole number"),
        // A misspelt option is refused, not ignored.
        ("return {handle = function() end, retires = 3}", "a/b.lua: unknown option 'retires' (did you mean 'retries'?); a handler table takes handle, on"),
        ("return {handle = function() end, timout = 3}", "unknown option 'timout' (did you mean 'timeout'?)"),
        ("return {handle = function() end, helper = function() end}", "unknown option 'helper'; a handler table takes"),
        ("return {function() end, handle = function() end}", "the returned table has an entry that is not named"),
    ])
    func badHandlerShapes(_ source: String, _ message: String) async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.run(source, path: "a/b.lua", on: worker)
        #expect(outcome.error?.reason == .invalidHandler)
        #expect(outcome.error?.message.contains(message) == true, "\(String(describing: outcome.error))")
    }

    @Test func optionsAreRead() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let handler = try await worker.load(path: "a/b.lua", source: Array("return {on = {'agent.task.*', 'test'}, timeout = 2, retries = 5, handle = function() end}".utf8))
        #expect(handler.options == LuaHandlerOptions(on: ["agent.task.*", "test"], timeout: .seconds(2), retries: 5))
    }

    @Test func handlersCannotChangeEachOthersLibrariesOrGlobals() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let vandal = try await worker.load(path: "a/vandal.lua", source: Array("""
            shared = "vandal"
            string.upper = function() return "pwned" end
            rawset(table, "concat", nil)
            json.encode = nil
            math.floor = nil
            return function() return string.upper("x"), ("y"):upper() end
            """.utf8))
        let victim = try await worker.load(path: "b/victim.lua", source: Array("""
            return function() return shared, string.upper("x"), ("y"):upper(), table.concat({1, 2}), json.encode({1}), math.floor(1.5) end
            """.utf8))
        let vandalized = await worker.invoke(vandal, arguments: [], info: LuaInvocationInfo(handlerPath: vandal.path))
        #expect(try vandalized.result.get() == [.string("pwned"), .string("Y")])
        let outcome = await worker.invoke(victim, arguments: [], info: LuaInvocationInfo(handlerPath: victim.path))
        #expect(try outcome.result.get() == [.nil, .string("X"), .string("Y"), .string("12"), .string("[1]"), .integer(1)])
    }

    @Test func memoryIsReleasedAfterManyLoads() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let source = Array("local big = {} for i = 1, 1000 do big[i] = i end return function() return #big end".utf8)
        for _ in 0..<50 { await worker.unload(try await worker.load(path: "a/b.lua", source: source)) }
        let baseline = await worker.memoryUsed
        for _ in 0..<500 { await worker.unload(try await worker.load(path: "a/b.lua", source: source)) }
        let after = await worker.memoryUsed
        #expect(after < baseline + 512 * 1024, "grew from \(baseline) to \(after)")
        #expect(await worker.handlerCount == 0)
    }
}

@Suite("Did you mean")
struct SuggestionTests {
    @Test func closeNamesAreSuggestedFarOnesNot() {
        let options = ["handle", "on", "timeout", "retries", "retry_delay", "concurrency"]
        #expect(Suggestion.closest(to: "retires", among: options) == "retries", "two letters swapped")
        #expect(Suggestion.closest(to: "timeot", among: options) == "timeout")
        #expect(Suggestion.closest(to: "concurency", among: options) == "concurrency")
        #expect(Suggestion.closest(to: "Handle", among: options) == "handle")
        #expect(Suggestion.closest(to: "helper", among: options) == nil)
        #expect(Suggestion.closest(to: "xy", among: options) == nil, "a short name needs a close match")
        #expect(Suggestion.closest(to: "incrby", among: ["get", "set", "incr", "delete"]) == "incr")
    }
}
