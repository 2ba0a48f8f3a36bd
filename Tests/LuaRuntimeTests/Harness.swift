#if canImport(Glibc)
import Glibc
#endif
import LuaRuntime

/// Small limits so that tests that hit them finish quickly.
extension LuaLimits {
    static var testing: LuaLimits {
        var limits = LuaLimits()
        limits.memoryBytes = 32 << 20
        limits.instructions = 5_000_000
        limits.wallClock = .seconds(5)
        return limits
    }
}

/// Host functions for tests: `test.sleep(ms)` suspends, `test.now()` returns immediately,
/// `test.values()` returns a table through the async path, `test.fail()` fails asynchronously,
/// `test.clock()` reads a monotonic clock in seconds, `test.cpu()` the CPU seconds the worker's
/// thread has used (what a call costs, however many other processes share the cores).
enum TestLibrary {
    /// `test.clock()` counts seconds from here.
    static let epoch = ContinuousClock.now

    static func library() -> LuaLibrary {
        var test = LuaLibrary(name: "test")
        test.function("sleep") { call in
            let milliseconds = try call.integer(1)
            return .suspend { deadline in
                try await Task.sleep(until: min(ContinuousClock.now.advanced(by: .milliseconds(milliseconds)), deadline), clock: .continuous)
                return [.integer(milliseconds)]
            }
        }
        test.function("now") { _ in
            .suspend { _ in [] }
        }
        test.function("values") { call in
            let count = try call.integer(1)
            return .suspend { _ in
                [.table(array: (1...count).map { .integer($0) }, fields: ["name": .string("values")])]
            }
        }
        test.function("clock") { call in
            let (seconds, attoseconds) = (ContinuousClock.now - TestLibrary.epoch).components
            return try call.returning(.number(Double(seconds) + Double(attoseconds) / 1e18))
        }
        test.function("cpu") { call in
            var time = timespec()
            guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time) == 0 else { throw LuaHostError("clock_gettime failed") }
            return try call.returning(.number(Double(time.tv_sec) + Double(time.tv_nsec) / 1e9))
        }
        test.function("fail") { _ in
            .suspend { _ in throw LuaHostError("the operation failed") }
        }
        test.function("echo") { call in
            var values: [LuaValue] = []
            for index in 0..<call.argumentCount { values.append(try call.value(index + 1)) }
            for value in values { try call.push(value) }
            return .values(values.count)
        }
        return test
    }
}

enum Harness {
    static func worker(limits: LuaLimits = .testing) throws -> LuaWorker {
        try LuaWorker(libraries: [TestLibrary.library()], limits: limits)
    }

    /// Loads `source` as the handler file `path` and invokes it once with `arguments`.
    static func run(_ source: String, path: String = "test/case.lua", arguments: [LuaValue] = [], on worker: LuaWorker) async -> LuaOutcome {
        do throws(LuaError) {
            let handler = try await worker.load(path: path, source: Array(source.utf8))
            return await worker.invoke(handler, arguments: arguments, info: LuaInvocationInfo(handlerPath: path))
        } catch {
            return LuaOutcome(result: .failure(error), instructions: 0)
        }
    }

    /// Runs `body` as the body of `return function(event) ... end`.
    static func call(_ body: String, arguments: [LuaValue] = [], on worker: LuaWorker) async -> LuaOutcome {
        await run("return function(event)\n\(body)\nend", arguments: arguments, on: worker)
    }

    /// A trivial invocation that must succeed: proves the state still serves after a failure.
    static func stillServes(_ worker: LuaWorker) async -> Bool {
        let outcome = await call("return 40 + 2", on: worker)
        return (try? outcome.result.get()) == [.integer(42)]
    }
}
