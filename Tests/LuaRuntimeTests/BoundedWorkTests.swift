import LuaRuntime
import Testing

/// One library call whose work an argument sets independently of its result.
struct BoundedWorkCase: CustomTestStringConvertible, Sendable {
    enum Ending: Sendable {
        /// Stock Lua, or the sandbox's per-call cap, refuses it with this catchable error.
        case catchable(String)
        /// It is charged past the instruction budget (an uncatchable limit).
        case limit
        /// It is charged and completes.
        case completes
    }

    let name: String
    /// Lua statements run before the call (building inputs), outside the measured call.
    let setup: String
    /// The call, as an expression.
    let call: String
    let ending: Ending
    var testDescription: String { name }

    init(_ name: String, setup: String = "", _ call: String, _ ending: Ending) {
        self.name = name
        self.setup = setup
        self.call = call
        self.ending = ending
    }
}

/// A case per function of the allow-list whose C loop an argument can make long: empty strings or
/// separators repeated, index ranges, counts, format widths, long inputs to scans.
let boundedWorkCases: [BoundedWorkCase] = [
    BoundedWorkCase("string.rep of an empty string 2^62 times", "string.rep('', 1 << 62)", .catchable("string.rep: 4611686018427387904 repetitions exceed the limit")),
    BoundedWorkCase("string.rep of empty strings with an empty separator", "string.rep('', math.maxinteger, '')", .catchable("repetitions exceed the limit")),
    BoundedWorkCase("string.rep too large for stock Lua", "string.rep('ab', 1 << 30)", .catchable("resulting string too large")),
    BoundedWorkCase("string.rep of empty strings below the cap", "string.rep('', 4000000)", .completes),
    BoundedWorkCase("string.rep as a method with a float count", "(''):rep(2^62)", .catchable("repetitions exceed the limit")),
    BoundedWorkCase("string.byte of a whole long string", setup: "local s = ('x'):rep(4e6)", "s:byte(1, -1)", .catchable("string slice too long")),
    BoundedWorkCase("string.byte with integer-limit indices", "('abc'):byte(math.mininteger, math.maxinteger)", .completes),
    BoundedWorkCase("string.sub with integer-limit indices", setup: "local s = ('x'):rep(4e6)", "s:sub(math.mininteger, math.maxinteger)", .completes),
    BoundedWorkCase("string.upper of a long string", setup: "local s = ('x'):rep(4e6)", "s:upper()", .completes),
    BoundedWorkCase("string.lower of a long string", setup: "local s = ('X'):rep(4e6)", "s:lower()", .completes),
    BoundedWorkCase("string.reverse of a long string", setup: "local s = ('x'):rep(4e6)", "s:reverse()", .completes),
    BoundedWorkCase("string.format with a width too long", "string.format('%0999d', 1)", .catchable("invalid conversion")),
    BoundedWorkCase("string.format with a long format", setup: "local f = ('%%'):rep(2e6)", "string.format(f)", .completes),
    BoundedWorkCase("string.packsize of a long format", setup: "local f = ('b'):rep(4e6)", "string.packsize(f)", .completes),
    BoundedWorkCase("string.pack with a long format", setup: "local f = ('x'):rep(4e6)", "string.pack(f)", .completes),
    BoundedWorkCase("string.unpack with a long format", setup: "local f = ('x'):rep(4e6)", "string.unpack(f, '')", .catchable("data string too short")),
    BoundedWorkCase("string.find plain, quadratic", setup: "local s, p = ('a'):rep(2e6), ('a'):rep(1e6) .. 'b'", "s:find(p, 1, true)", .limit),
    BoundedWorkCase("string.gsub backtracking", setup: "local s = ('a'):rep(3000)", "s:gsub('.-.-b', '')", .limit),
    BoundedWorkCase("string.gmatch backtracking", setup: "local s = ('a'):rep(3000)", "s:gmatch('.-.-b')()", .limit),
    BoundedWorkCase("string.match backtracking", setup: "local s = ('a'):rep(3000)", "s:match('.-.-b')", .limit),
    BoundedWorkCase("table.unpack up to math.maxinteger", "table.unpack({}, 1, math.maxinteger)", .catchable("too many results to unpack")),
    BoundedWorkCase("table.unpack over the whole integer range", "table.unpack({}, math.mininteger, math.maxinteger)", .catchable("too many results to unpack")),
    BoundedWorkCase("table.unpack just below the stack limit", "select('#', table.unpack({}, 1, 999000))", .completes),
    BoundedWorkCase("table.move over 10^12 empty slots", "table.move({}, 1, 1e12, 1)", .catchable("table.move: 1000000000000 elements exceed the limit")),
    BoundedWorkCase("table.move wrapping around", "table.move({}, 1, math.maxinteger, 2)", .catchable("destination wrap around")),
    BoundedWorkCase("table.move over the negative integers", "table.move({}, math.mininteger, -1, 1)", .catchable("too many elements to move")),
    BoundedWorkCase("table.move of a string's missing elements", "table.move('x', 1, 1e12, 1, {})", .catchable("elements exceed the limit")),
    BoundedWorkCase("table.concat over a huge empty range", "table.concat({}, '', 1, 1 << 40)", .catchable("invalid value (nil) at index 1")),
    BoundedWorkCase("table.concat of many empty strings", setup: "local t = {} for i = 1, 1e5 do t[i] = '' end", "table.concat(t)", .completes),
    BoundedWorkCase("table.insert at a huge position", "table.insert({}, math.maxinteger, 1)", .catchable("position out of bounds")),
    BoundedWorkCase("table.remove at a huge position", "table.remove({}, math.maxinteger)", .catchable("position out of bounds")),
    BoundedWorkCase("table.sort of one long string many times", setup: "local s, t = ('x'):rep(4e6), {} for i = 1, 1000 do t[i] = s end", "table.sort(t)", .catchable("table.sort: too much work for one call")),
    BoundedWorkCase("table.sort with a lying __len", "table.sort(setmetatable({}, {__len = function() return math.maxinteger end}))", .catchable("not supported")),
    BoundedWorkCase("utf8.len of a long string", setup: "local s = ('x'):rep(4e6)", "utf8.len(s)", .completes),
    BoundedWorkCase("utf8.codepoint of a whole long string", setup: "local s = ('x'):rep(4e6)", "utf8.codepoint(s, 1, -1)", .catchable("string slice too long")),
    BoundedWorkCase("utf8.offset far beyond a long string", setup: "local s = ('x'):rep(4e6)", "utf8.offset(s, math.maxinteger)", .completes),
    BoundedWorkCase("utf8.char of many code points", setup: "local t = {} for i = 1, 1e5 do t[i] = 0x10FFFF end", "utf8.char(table.unpack(t))", .completes),
    BoundedWorkCase("tonumber of a long digit string in base 2", setup: "local s = ('1'):rep(4e6)", "tonumber(s, 2)", .completes),
    BoundedWorkCase("json.decode of a long string", setup: "local s = '\"' .. ('x'):rep(4e6) .. '\"'", "json.decode(s)", .completes),
    BoundedWorkCase("load of a long chunk", setup: "local s = 'return ' .. ('1+'):rep(1e6) .. '1'", "load(s) ~= nil", .completes),
    BoundedWorkCase("coroutine.wrap nested deeply", "(function(f) return f(f) end)(function(f) return coroutine.wrap(f)(f) end)", .catchable("stack overflow")),
    BoundedWorkCase("select with a huge index", "select(math.maxinteger, 1)", .completes),
    BoundedWorkCase("math.random over the whole integer range", "math.random(math.mininteger, math.maxinteger)", .completes),
    // A table whose border lies in its hash part: 63 elements, #t = 2^62.
    BoundedWorkCase("table.sort of a table whose length lies", setup: "local liar = {} for i = 62, 0, -1 do liar[1 << i] = 1 end", "table.sort(liar)", .catchable("array too big")),
    BoundedWorkCase("table.insert at the front of a table whose length lies", setup: "local liar = {} for i = 62, 0, -1 do liar[1 << i] = 1 end", "table.insert(liar, 1, 0)", .catchable("table.insert: too much work for one call")),
    BoundedWorkCase("table.remove at the front of a table whose length lies", setup: "local liar = {} for i = 62, 0, -1 do liar[1 << i] = 1 end", "table.remove(liar, 1)", .catchable("table.remove: too much work for one call")),
    BoundedWorkCase("table.unpack of a table whose length lies", setup: "local liar = {} for i = 62, 0, -1 do liar[1 << i] = 1 end", "table.unpack(liar)", .catchable("too many results to unpack")),
    BoundedWorkCase("appending to a table is not charged as a shift", "(function() local t = {} for i = 1, 20000 do table.insert(t, i) end for i = 1, 20000 do table.remove(t) end return #t end)()", .completes),
    BoundedWorkCase("string.gsub walking a long replacement per match", setup: "local r = ('%0'):rep(2e6)", "('y'):rep(1e5):gsub('', r)", .limit),
    BoundedWorkCase("json.encode of a long string", setup: "local s = ('x'):rep(4e6)", "#json.encode(s)", .completes),
]

// Serialized: the cases measure single calls; CPU time is what they compare, but a busy core's caches
// still slow a call a little.
@Suite("Work in C is bounded, not just results", .serialized)
struct BoundedWorkTests {
    /// Per-call budget of the bounded functions in CPU time of the worker's thread, with a margin
    /// (nominal: about 50 ms; docs/lua-api.md). CPU time, not wall time: the other suites share the
    /// two cores, and a call that waits for a core has not done more work.
    static let oneCallAtMost: Duration = .milliseconds(500)

    @Test(arguments: boundedWorkCases)
    func oneCallEndsQuickly(_ item: BoundedWorkCase) async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let handler = try await worker.load(path: "work/case.lua", source: Array("""
            return function()
              \(item.setup)
              local start = test.cpu()
              local ok, result = pcall(function() return \(item.call) end)
              return ok, result, test.cpu() - start
            end
            """.utf8))
        let clock = ContinuousClock()
        var start = clock.now
        var outcome = await worker.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path))
        var elapsed = clock.now - start
        // Over the bound three runs in a row: one slow run is the machine, three are the call.
        var timings: [Double] = []
        for run in 1...3 {
            guard case .success(let values) = outcome.result, values.count == 3, case .number(let seconds) = values[2] else { break }
            timings.append(seconds)
            if seconds < Self.oneCallAtMost.seconds || run == 3 { break }
            start = clock.now
            outcome = await worker.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path))
            elapsed = clock.now - start
        }
        if let fastest = timings.min() {
            #expect(fastest < Self.oneCallAtMost.seconds, "the call took \(timings) s")
        }
        switch item.ending {
        case .catchable(let text):
            let values = try outcome.result.get()
            #expect(values.first == .boolean(false), "expected a catchable error, got \(values)")
            #expect(values.dropFirst().first?.text?.contains(text) == true, "\(values)")
            #expect(values.dropFirst().first?.text?.contains("moonhook.sandbox") == false, "names no sandbox wrapper: \(values)")
        case .limit:
            let error = try #require(outcome.error, "expected a limit, got \(outcome.result)")
            #expect(error.isLimit || error.message.contains("pattern too complex"), "\(error.message)")
        case .completes:
            let values = try outcome.result.get()
            #expect(values.first == .boolean(true), "\(values)")
        }
        // A limit ends the invocation inside the call: the whole invocation is then the bound.
        #expect(elapsed < LuaLimits.testing.wallClock + .seconds(1), "took \(elapsed)")
        #expect(await Harness.stillServes(worker))
    }

    @Test func everyCaseNameIsUnique() {
        #expect(boundedWorkCases.count >= 40)
        #expect(Set(boundedWorkCases.map(\.name)).count == boundedWorkCases.count)
    }
}

/// Serialized as well: the bound is on wall-clock time, which forty workers sharing two cores would
/// stretch for reasons that have nothing to do with the sandbox.
@Suite("Loops of bounded calls end by the deadline", .serialized)
struct BoundedWorkLoopTests {
    /// The same call in a loop of pcalls ends with a limit within the deadline plus a second.
    @Test(arguments: boundedWorkCases)
    func aLoopOfCallsEndsByTheDeadline(_ item: BoundedWorkCase) async throws {
        var limits = LuaLimits.testing
        limits.instructions = 1 << 40   // only the deadline can stop it
        limits.wallClock = .milliseconds(300)
        let worker = try Harness.worker(limits: limits)
        defer { worker.shutdown() }
        let handler = try await worker.load(path: "work/loop.lua", source: Array("""
            return function()
              \(item.setup)
              while true do pcall(function() return \(item.call) end) end
            end
            """.utf8))
        // The bound is wall-clock time, which a test run starting thirty suites at once on two cores
        // can stretch on its own: a case fails when it is over the bound three times in a row.
        var times: [Duration] = []
        for _ in 0..<3 {
            let clock = ContinuousClock()
            let start = clock.now
            let outcome = await worker.invoke(handler, arguments: [], info: LuaInvocationInfo(handlerPath: handler.path))
            times.append(clock.now - start)
            let error = try #require(outcome.error, "expected a limit, got \(outcome.result)")
            #expect(error.isLimit, "\(error.message)")
            if times.last! < limits.wallClock + .seconds(1) { break }
        }
        #expect(times.last! < limits.wallClock + .seconds(1), "took \(times)")
        #expect(await Harness.stillServes(worker))
    }

}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
