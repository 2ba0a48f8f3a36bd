import LuaRuntime
import Testing

/// The sandbox's step-limited pattern functions must behave exactly like Lua 5.4's own.
@Suite("Pattern matching")
struct PatternTests {
    /// Expected output produced by Debian's stock `lua5.4` running the same script.
    static let script = #"""
local lines = {}
local function print(...) local p = table.pack(...) for i = 1, p.n do p[i] = tostring(p[i]) end lines[#lines+1] = table.concat(p, '\t') end
local cases = {
  {"find", "hello world", "o w"},
  {"find", "hello world", "l+"},
  {"find", "hello world", "(o)(r)"},
  {"find", "a.b", ".", 1, true},
  {"find", "hello", "l", -2},
  {"find", "hello", "xyz"},
  {"find", "hello", "", 10},
  {"match", "key=value", "(%w+)=(%w+)"},
  {"match", "  trim me  ", "^%s*(.-)%s*$"},
  {"match", "2024-01-15", "(%d+)-(%d+)-(%d+)"},
  {"match", "THE (quick) fox", "%((%a+)%)"},
  {"match", "f(a(b)c)d", "%b()"},
  {"match", "THE (quick) fox", "%f[%a]%a+", 5},
  {"match", "hello", "()ll()"},
  {"match", "abcabc", "(abc)%1"},
  {"match", "x = [[a]]", "[%[%]]+"},
  {"match", "abc-def", "[a-c%-]+"},
  {"match", "A1b2", "[^%d]+"},
  {"match", "aaa", "a-b"},
  {"match", "aaab", "a-b"},
  {"match", "color colour", "colou?r", 7},
  {"match", "$100", "^%$(%d+)$"},
  {"gsub", "hello world", "o", "0"},
  {"gsub", "hello world", "(%w+)", "<%1>"},
  {"gsub", "hello world", "%w+", "%0 %0", 1},
  {"gsub", "abc", "", "-"},
  {"gsub", "hello", "l", "%%"},
  {"gsub", "one two", "(%w+) (%w+)", "%2 %1"},
  {"gsub", "abc", "%w", {a = "1", b = false}},
}
for _, c in ipairs(cases) do
  local f = string[c[1]]
  local r = table.pack(f(table.unpack(c, 2)))
  local out = {}
  for i = 1, r.n do out[#out+1] = type(r[i]) == "string" and string.format("%q", r[i]) or tostring(r[i]) end
  print(c[1], table.concat(out, ", "))
end
local t = {}
for k, v in string.gmatch("a=1, b=2, c=3", "(%w+)=(%w+)") do t[#t+1] = k .. v end
print("gmatch", table.concat(t, ","))
t = {}
for w in string.gmatch("one two  three", "%a+") do t[#t+1] = w end
print("gmatch2", table.concat(t, ","))
t = {}
for w in string.gmatch("abc", "") do t[#t+1] = "x" end
print("gmatch3", #t)
t = {}
for w in string.gmatch("hello world from lua", "%a+", 7) do t[#t+1] = w end
print("gmatch4", table.concat(t, ","))
print(pcall(string.find, "a", "%"))
print(pcall(string.find, "a", "[a"))
print(pcall(string.find, "a", "(a"))
print(pcall(string.gsub, "a", "a", "%2"))

return table.concat(lines, '\n')
"""#

    static let expected = #"""
find	5, 7
find	3, 4
find	8, 9, "o", "r"
find	2, 2
find	4, 4
find	nil
find	nil
match	"key", "value"
match	"trim me"
match	"2024", "01", "15"
match	"quick"
match	"(a(b)c)"
match	"quick"
match	3, 5
match	"abc"
match	"[["
match	"abc-"
match	"A"
match	nil
match	"aaab"
match	"colour"
match	"100"
gsub	"hell0 w0rld", 2
gsub	"<hello> <world>", 2
gsub	"hello hello world", 1
gsub	"-a-b-c-", 4
gsub	"he%%o", 2
gsub	"two one", 1
gsub	"1bc", 3
gmatch	a1,b2,c3
gmatch2	one,two,three
gmatch3	4
gmatch4	world,from,lua
false	malformed pattern (ends with '%')
false	malformed pattern (missing ']')
false	unfinished capture
false	invalid capture index %2
"""#

    @Test func matchesStockLua() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        // The script runs at load time; the handler returns what it printed.
        let wrapped = "local output = (function()\n" + Self.script + "\nend)()\nreturn function() return output end"
        let result = await Harness.run(wrapped, on: worker)
        #expect(try result.result.get() == [.string(Self.expected)])
    }

    @Test func stepLimitNamesThePattern() async throws {
        var limits = LuaLimits.testing
        limits.patternSteps = 100_000
        limits.instructions = 1_000_000_000
        let worker = try Harness.worker(limits: limits)
        defer { worker.shutdown() }
        let outcome = await Harness.call("return ('a'):rep(1500):find('.-.-b')", on: worker)
        #expect(outcome.error?.message == "test/case.lua:2: pattern too complex: more than 100000 matching steps")
    }

    @Test func ordinaryWorkOnLargeStringsPasses() async throws {
        let worker = try Harness.worker()
        defer { worker.shutdown() }
        let outcome = await Harness.call(
            "local s = ('word '):rep(100000) local n = select(2, s:gsub('%w+', '')) return n, (s:match('^%s*(.-)%s*$')):len()",
            on: worker)
        #expect(try outcome.result.get() == [.integer(100_000), .integer(499_999)])
    }
}
