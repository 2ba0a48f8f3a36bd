import LuaRuntime
import Testing

/// Hostile handler code and the containment it must meet: each case fails (or is refused) with the
/// expected error, the process survives, and the same state serves the next invocation.
struct HostileCase: CustomTestStringConvertible, Sendable {
    enum Expectation: Sendable {
        /// The invocation fails with this reason and a message containing this text.
        case fails(LuaError.Reason, String)
        /// The invocation fails because of some limit (which one may depend on the machine).
        case limit
        /// The invocation succeeds and returns exactly these values.
        case returns([LuaValue])
        /// The invocation succeeds and one returned string contains this text.
        case returnsText(String)
        /// The invocation fails with a message containing one of these texts.
        case failsWithAny([String])
    }

    let name: String
    let body: String
    let expectation: Expectation
    var testDescription: String { name }

    init(_ name: String, _ body: String, _ expectation: Expectation) {
        self.name = name
        self.body = body
        self.expectation = expectation
    }
}

let hostileCases: [HostileCase] = [
    // Escapes.
    HostileCase("io is absent", "return io.open('/etc/passwd')", .fails(.runtime, "global 'io'")),
    HostileCase("os.execute is absent", "return os.execute('id')", .fails(.runtime, "field 'execute'")),
    HostileCase("os.getenv is absent", "return os.getenv('HOME')", .fails(.runtime, "field 'getenv'")),
    HostileCase("require is absent", "return require('os')", .fails(.runtime, "global 'require'")),
    HostileCase("package is absent", "return package.loaded", .fails(.runtime, "global 'package'")),
    HostileCase("dofile and loadfile are absent", "return dofile or loadfile or 'none'", .returns([.string("none")])),
    HostileCase("debug is absent", "return debug.getregistry()", .fails(.runtime, "global 'debug'")),
    HostileCase("string.dump is absent", "return string.dump(function() end)", .fails(.runtime, "field 'dump'")),
    HostileCase("binary chunks are refused", "local f, err = load('\\27Lua\\84\\0') return f == nil, err",
        .returns([.boolean(true), .string("attempt to load a binary chunk (mode is 't')")])),
    HostileCase("load with mode b is refused", "local f, err = load('return 1', 'x', 'b') return err", .returns([.string("load: handlers may load text chunks only")])),
    HostileCase("load cannot reach the real globals", "return load('return io')()", .returns([.nil])),
    HostileCase("string metatable is locked", "return getmetatable('')", .returns([.boolean(false)])),
    HostileCase("string methods cannot be replaced through the metatable", "getmetatable('').__index.upper = nil", .fails(.runtime, "attempt to index a boolean value")),
    HostileCase("setmetatable on strings is impossible", "return setmetatable('', {})", .fails(.runtime, "bad argument #1 to 'setmetatable'")),
    HostileCase("__gc is refused", "setmetatable({}, {__gc = function() while true do end end})", .fails(.runtime, "__gc and __mode")),
    HostileCase("__mode is refused", "setmetatable({}, {__mode = 'k'})", .fails(.runtime, "__gc and __mode")),
    HostileCase("collectgarbage is limited to count", "collectgarbage('stop')", .fails(.runtime, "only \"count\"")),
    // CPU.
    HostileCase("plain infinite loop", "local n = 0\nwhile true do n = n + 1 end", .fails(.instructionLimit, "test/case.lua:3: instruction limit exceeded")),
    HostileCase("empty infinite loop", "while true do end", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop inside pcall", "while true do pcall(function() while true do end end) end", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in an xpcall message handler", "xpcall(function() while true do end end, function() while true do end end)", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("xpcall handler looping after an error", "xpcall(function() error('x') end, function() while true do end end)", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in __close run by coroutine.close",
        """
        local co = coroutine.create(function()
          local x <close> = setmetatable({}, {__close = function() while true do end end})
          coroutine.yield()
        end)
        coroutine.resume(co)
        return coroutine.close(co)
        """,
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("pcall around a __close loop",
        "while true do pcall(function() local x <close> = setmetatable({}, {__close = function() while true do end end}) error('u') end) end",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in a sort comparator",
        "local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end)",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("pcall loop in a sort comparator",
        "local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do pcall(function() while true do end end) end end)",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in a nested coroutine", "coroutine.wrap(function() while true do end end)()", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("resuming a looping coroutine forever",
        "local co = coroutine.create(function() while true do end end) while true do coroutine.resume(co) end",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("coroutines inside coroutines",
        "local function deep(n) if n == 0 then while true do end end return coroutine.wrap(function() return deep(n - 1) end)() end deep(50)",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in a gsub callback", "return ('aaa'):gsub('a', function() while true do end end)", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in __index called from C",
        "for _ in ipairs(setmetatable({}, {__index = function() while true do end end})) do end",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("loop in __tostring called by tostring",
        "return tostring(setmetatable({}, {__tostring = function() while true do end end}))",
        .fails(.instructionLimit, "instruction limit exceeded")),
    // Memory.
    HostileCase("huge table", "local t = {} for i = 1, 1e9 do t[i] = i end", .fails(.memory, "memory limit exceeded")),
    HostileCase("huge string through rep", "return ('x'):rep(1e9)", .fails(.runtime, "string.rep: a result of 1000000000 bytes exceeds the limit")),
    HostileCase("rep with a huge separator", "return string.rep('x', 1e4, ('y'):rep(1e4))", .fails(.runtime, "exceeds the limit")),
    HostileCase("doubling concatenation", "local s = 'x' while true do s = s .. s end", .fails(.memory, "memory limit exceeded")),
    // Memory, the deadline or the budget may come first, depending on how fast the machine runs.
    HostileCase("many strings in a table", "local t = {} for i = 1, 1e8 do t[i] = tostring(i) .. ('y'):rep(10000) end", .limit),
    HostileCase("memory error caught by pcall keeps failing cleanly",
        "local ok, err = pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) return ok, err",
        .returns([.boolean(false), .string("not enough memory")])),
    // C-side work.
    HostileCase("backtracking pattern", "return ('a'):rep(1500):find('.-.-b')", .limit),
    HostileCase("backtracking pattern caught by pcall in a loop",
        "while true do pcall(string.find, ('a'):rep(1500), '.-.-b') end", .limit),
    HostileCase("quadratic plain find", "return ('a'):rep(2e6):find(('a'):rep(1e6) .. 'b', 1, true)", .limit),
    HostileCase("table.move of a huge range", "return table.move({}, 1, 1e12, 2)", .fails(.runtime, "table.move: 1000000000000 elements exceed the limit")),
    HostileCase("table.move in a loop", "while true do table.move({}, 1, 1e6, 2) end", .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("insert at the front of a long table",
        "local t = {} for i = 1, 2e5 do t[i] = i end while true do table.insert(t, 1, 0) table.remove(t, 1) end",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("insert into a table whose __len lies",
        "table.insert(setmetatable({}, {__len = function() return 10^15 // 1 end}), 1, 0)",
        .fails(.runtime, "table.insert: tables with __len, __index or __newindex metamethods are not supported")),
    HostileCase("sort driven by C metamethods only",
        "table.sort(setmetatable({}, {__len = function() return 2^31 - 2 end, __index = tostring, __newindex = rawequal}))",
        .fails(.runtime, "table.sort: tables with __len, __index or __newindex metamethods are not supported")),
    HostileCase("table.move with a numeric string range", "table.move({}, 1, '1e15', 2)", .fails(.runtime, "table.move: 1000000000000000 elements exceed the limit")),
    HostileCase("string.rep with a numeric string count", "return string.rep('x', '100000000')", .fails(.runtime, "string.rep: a result of 100000000 bytes exceeds the limit")),
    HostileCase("unpack of a huge range", "return table.unpack({}, 1, 1e8)", .failsWithAny(["instruction limit exceeded", "too many results to unpack"])),
    HostileCase("json.encode of a table that shares its subtables",
        "local t = {} for i = 1, 60 do t = {t, t} end return json.encode(t)", .fails(.runtime, "cannot encode more than 1000000 values as JSON")),
    HostileCase("returning a table that shares its subtables",
        "local t = {} for i = 1, 60 do t = {t, t} end return t", .fails(.runtime, "value has more than 100000 parts")),
    HostileCase("creating coroutines in a loop", "while true do coroutine.wrap(function() for j = 1, 900 do end end)() end",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("resuming the invocation's own coroutine", "return coroutine.resume(coroutine.running())",
        .fails(.runtime, "coroutine.resume: cannot resume a handler invocation")),
    HostileCase("closing the invocation's own coroutine", "return coroutine.close(coroutine.running())",
        .fails(.runtime, "coroutine.close: cannot close a handler invocation")),
    HostileCase("json.array stripping a protected metatable", "json.array(setmetatable({}, {__metatable = 'mine'}))",
        .fails(.runtime, "json.array: the table already has a metatable")),
    HostileCase("load posing as another handler's file", "return select(2, pcall(load(\"error('x')\", '@b/other.lua')))",
        .returns([.string("@b/other.lua:1: x")])),
    HostileCase("copying a big string in a pcall loop",
        "local big = ('x'):rep(4 * 1024 * 1024) while true do pcall(function() local copy = big .. 'y' end) end",
        .fails(.instructionLimit, "instruction limit exceeded")),
    HostileCase("compiling big chunks in a loop",
        "local source = 'return ' .. ('1 + '):rep(200000) .. '1' while true do pcall(load, source) end",
        .limit),
    // Stack.
    HostileCase("deep Lua recursion", "local function f() return 1 + f() end return f()", .failsWithAny(["stack overflow", "memory limit exceeded"])),
    HostileCase("C stack through gsub callbacks", "local function f(s) return (s:gsub('.', f)) end return f('ab')", .fails(.runtime, "stack overflow")),
    HostileCase("C stack through coroutine.wrap", "local function f() return coroutine.wrap(f)() end return f()", .fails(.runtime, "stack overflow")),
    HostileCase("chained coroutine.close",
        """
        local previous
        for i = 1, 1000 do
          local inner = previous
          local co = coroutine.create(function()
            local guard <close> = setmetatable({}, {__close = function()
              if inner then
                local ok, err = coroutine.close(inner)
                if not ok then error(err, 0) end
              end
            end})
            coroutine.yield()
          end)
          coroutine.resume(co)
          previous = co
        end
        return coroutine.close(previous)
        """,
        .returnsText("coroutine.close: nested too deeply")),
    // Hostile values handed to the host.
    HostileCase("returned table whose __index raises",
        "return setmetatable({a = 1}, {__index = function() error('boom') end})",
        .returns([.table(array: [], fields: ["a": .integer(1)])])),
    HostileCase("returned table whose __index loops",
        "return setmetatable({}, {__index = function() while true do end end, __len = function() while true do end end})",
        .returns([.table(array: [], fields: [:])])),
    HostileCase("error object whose __tostring loops",
        "error(setmetatable({}, {__tostring = function() while true do end end}))",
        .fails(.runtime, "(error object is a table value)")),
    HostileCase("json.encode ignores __pairs and __index",
        "return json.encode(setmetatable({a = 1}, {__pairs = function() while true do end end, __index = function() error('x') end}))",
        .returns([.string("{\"a\":1}")])),
    HostileCase("json.encode of a cycle", "local t = {} t.t = t return json.encode(t)", .fails(.runtime, "nested deeper than 64 levels")),
    HostileCase("returning a function", "return function() end", .fails(.runtime, "cannot return this value")),
    HostileCase("a host wait inside a coroutine the handler made",
        "return coroutine.wrap(function() return test.sleep(1) end)()",
        .fails(.runtime, "test.sleep waits for I/O and cannot run inside a coroutine created by the handler")),
    HostileCase("a host wait inside a sort comparator",
        "table.sort({3, 2, 1}, function(a, b) test.sleep(1) return a < b end)",
        .fails(.runtime, "cannot run inside a metamethod or library callback")),
    HostileCase("yielding the handler's own coroutine", "coroutine.yield(1)", .fails(.runtime, "yielded outside a coroutine it created")),
]

@Suite("Hostile Lua is contained")
struct HostileLuaTests {
    @Test(arguments: hostileCases)
    func contained(_ hostile: HostileCase) async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call(hostile.body, on: worker)
        switch hostile.expectation {
        case .fails(let reason, let text):
            let error = try #require(outcome.error, "expected a failure, got \(outcome.result)")
            #expect(error.reason == reason, "\(error.message)")
            #expect(error.message.contains(text), "\(error.message)")
            #expect(!error.message.contains("\n"), "one-line message: \(error.message)")
        case .limit:
            let error = try #require(outcome.error, "expected a limit, got \(outcome.result)")
            #expect(error.isLimit || error.message.contains("pattern too complex"), "\(error.message)")
        case .returns(let values):
            #expect(try outcome.result.get() == values)
        case .returnsText(let text):
            let values = try outcome.result.get()
            #expect(values.contains { $0.text?.contains(text) == true }, "\(values)")
        case .failsWithAny(let texts):
            let error = try #require(outcome.error, "expected a failure, got \(outcome.result)")
            #expect(texts.contains { error.message.contains($0) }, "\(error.message)")
        }
        #expect(await Harness.stillServes(worker))
    }

    /// The issue asks for at least 25 cases of our own design; this keeps the list from shrinking.
    @Test func moreThanTwentyFiveCases() {
        #expect(hostileCases.count >= 25)
        #expect(Set(hostileCases.map(\.name)).count == hostileCases.count, "case names are unique")
    }
}
