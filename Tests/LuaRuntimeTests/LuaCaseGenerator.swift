/// Generates Lua expressions that exercise the standard library where stock Lua 5.4 and the sandbox
/// must agree: the whole pattern grammar through `find`, `match`, `gmatch` and `gsub`, and
/// `string`, `table` and `utf8` calls with edge arguments. Deterministic for a seed.
///
/// Every case is an expression; `LuaDifferential` wraps each in a function, runs it under pcall and
/// writes the results in a form both interpreters print alike.
struct LuaCaseGenerator {
    private var random: SplitMix64

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    /// `count` pattern cases, then `count / 4` library cases.
    mutating func cases(patterns count: Int) -> [String] {
        var cases: [String] = []
        cases.reserveCapacity(count + count / 4)
        for _ in 0..<count { cases.append(patternCase()) }
        for _ in 0..<(count / 4) { cases.append(libraryCase()) }
        return cases
    }

    // MARK: Patterns

    static let classes = Array("acdglpsuwxz")
    static let subjectAlphabet: [String] = [
        "a", "b", "c", "x", "y", "z", "A", "B", "Z", "0", "1", "9", " ", "\\t", "\\n", ".", ",", "-", "+", "*", "?",
        "(", ")", "[", "]", "%", "^", "$", "\\0", "\\200", "\\255", "_", "\\\"", "ab", "ba", "aa",
    ]
    static let literals: [String] = ["a", "b", "c", "x", "A", "0", "1", " ", "-", ",", "\\0", "\\255", "_", "\\\""]

    private mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    private mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
    private mutating func upTo(_ n: Int) -> Int { Int(random.next() % UInt64(n + 1)) }

    private mutating func subject() -> String {
        var text = ""
        for _ in 0..<upTo(10) { text += pick(Self.subjectAlphabet) }
        return "\"" + text + "\""
    }

    /// One character class, as pattern text.
    private mutating func singleClass() -> String {
        switch upTo(9) {
        case 0, 1: return pick(Self.literals)
        case 2: return "."
        case 3, 4:
            let letter = pick(Self.classes)
            return "%" + String(chance(30) ? Character(letter.uppercased()) : letter)
        case 5: return "%" + pick([".", "%", "[", "]", "(", ")", "-", "+", "*", "?", "^", "$"])
        default: return set()
        }
    }

    private mutating func set() -> String {
        var text = "["
        if chance(25) { text += "^" }
        if chance(10) { text += "]" }
        for _ in 0..<(1 + upTo(3)) {
            switch upTo(4) {
            case 0: text += pick(Self.literals.filter { $0 != "\\\"" }) + "-" + pick(["c", "z", "Z", "9", "a", "\\255"])
            case 1: text += "%" + String(pick(Self.classes))
            case 2: text += "%" + pick(["]", "%", "-", "^"])
            default: text += pick(Self.literals)
            }
        }
        if chance(5) { text += "-" }
        return text + (chance(3) ? "" : "]")
    }

    private mutating func item(depth: Int, captures: inout Int) -> String {
        switch upTo(14) {
        case 0 where depth < 2:
            captures += 1
            var inner = ""
            for _ in 0..<upTo(3) { inner += item(depth: depth + 1, captures: &captures) }
            return "(" + inner + (chance(4) ? "" : ")")
        case 1: return "()"
        case 2: return "%b" + pick(["()", "[]", "ab", "xy", "\\\"\\\"", "a"])
        case 3: return "%f" + (chance(5) ? "a" : set())
        case 4 where captures > 0 || chance(10): return "%" + String(1 + upTo(max(captures, 1)))
        case 5: return chance(50) ? "%" : "%0"
        default:
            return singleClass() + pick(["", "", "", "*", "+", "-", "?"])
        }
    }

    private mutating func pattern() -> String {
        var captures = 0
        var text = chance(20) ? "^" : ""
        for _ in 0..<upTo(5) { text += item(depth: 0, captures: &captures) }
        if chance(15) { text += "$" }
        if chance(3) { text += ")" }
        return "\"" + text + "\""
    }

    private mutating func initValue() -> String {
        pick(["nil", "1", "2", "0", "-1", "-3", "-100", "4", "11", "100", "math.maxinteger", "math.mininteger", "1.0", "2^53"])
    }

    private mutating func replacement() -> String {
        switch upTo(5) {
        case 0: return "\"<%0>\""
        case 1: return "\"%1-%2\""
        case 2: return pick(["\"%%\"", "\"%x\"", "\"%\"", "\"\"", "\"z\"", "3", "\"%9\""])
        case 3: return "{a = \"A\", b = false, x = 1, [\"\"] = \"E\"}"
        case 4: return "function(a, b) if a == \"b\" then return false end return b and (tostring(a) .. tostring(b)) or nil end"
        default: return "function() return {} end"
        }
    }

    private mutating func patternCase() -> String {
        let s = subject(), p = pattern()
        switch upTo(5) {
        case 0: return "string.find(\(s), \(p), \(initValue()))"
        case 1: return "string.find(\(s), \(p), \(initValue()), \(pick(["true", "false", "nil", "1"])))"
        case 2: return "string.match(\(s), \(p), \(initValue()))"
        case 3: return "collect(string.gmatch(\(s), \(p), \(initValue())))"
        case 4: return "string.gsub(\(s), \(p), \(replacement()), \(pick(["nil", "0", "1", "2", "-1", "math.maxinteger", "1.5"])))"
        default: return "(\(s)):gsub(\(p), \(replacement()))"
        }
    }

    // MARK: string, table and utf8

    private mutating func integer() -> String {
        pick(["0", "1", "2", "3", "-1", "-2", "5", "10", "-10", "math.maxinteger", "math.mininteger", "math.maxinteger - 1",
              "math.mininteger + 1", "2^31", "2^53", "2^63", "-0.0", "1.5", "\"2\"", "\"0x10\"", "nil", "{}", "math.huge", "0/0"])
    }

    private mutating func smallTable() -> String {
        pick(["{}", "{1, 2, 3}", "{\"a\", \"b\", \"c\", \"d\"}", "{1, nil, 3}", "{\"x\", 2, 3.5}", "{true}", "{{}, 1}", "{3, 1, 2, 5, 4}",
              "{\"b\", \"a\", \"c\"}", "{1, \"a\"}", "{n = 1}"])
    }

    private mutating func utf8Subject() -> String {
        pick(["\"\"", "\"abc\"", "\"h\\u{E9}llo\"", "\"\\u{10FFFF}\"", "\"\\u{7FFFFFFF}\"", "\"\\xff\"", "\"a\\x80b\"", "\"\\xe4\\xbd\"",
              "\"\\u{4E2D}\\u{6587}\"", "\"\\0\"", "\"\\xed\\xa0\\x80\"", "\"\\xf4\\x90\\x80\\x80\""])
    }

    private mutating func libraryCase() -> String {
        let s = subject(), i = integer(), j = integer()
        switch upTo(29) {
        case 0: return "string.sub(\(s), \(i), \(j))"
        case 1: return "string.byte(\(s), \(i), \(j))"
        case 2: return "string.rep(\(pick(["\"ab\"", "\"x\"", "\"\""])), \(pick(["0", "1", "3", "-1", "-5", "2.0", "\"2\"", "nil", "2.5"])), \(pick(["nil", "\",\"", "\"\"", "1"])))"
        case 3: return "string.rep(\"x\", \(pick(["math.maxinteger", "2^31", "2^40", "2^63"])))"
        case 4: return "string.char(\(integer()), \(pick(["65", "0", "255", "256", "-1", "97"])))"
        case 5:
            let format = pick(["\"%d\"", "\"%5.2f\"", "\"%q\"", "\"%s\"", "\"%x\"", "\"%X\"", "\"%o\"", "\"%c\"", "\"%e\"", "\"%g\"", "\"%i\"",
                               "\"%10s\"", "\"%-10s|\"", "\"%.3s\"", "\"%099d\"", "\"%\"", "\"%5\"", "\"%a\"", "\"%u\"", "\"%.20f\"", "\"%+.3d\"",
                               "\"%#x\"", "\"% d\"", "\"%s %s\""])
            return "string.format(\(format), \(integer()))"
        case 6: return "string.format(\"%q\", \(pick([s, integer()])))"
        case 7: return "string.upper(\(s)), string.lower(\(s)), string.reverse(\(s)), string.len(\(s))"
        case 8: return "string.pack(\(pick(["\"i4\"", "\"<i8\"", "\">I2\"", "\"s1\"", "\"z\"", "\"d\"", "\"j\"", "\"!4 i3\"", "\"b\"", "\"B\"", "\"i17\"", "\"i0\"", "\"Xi4\"", "\"c3\""])), \(pick([integer(), s])))"
        case 9: return "string.unpack(\(pick(["\"i4\"", "\"<i2\"", "\"z\"", "\"s1\"", "\"b\"", "\"B B\"", "\"c2\"", "\">I3\"", "\"i9\""])), \(s), \(pick(["nil", "1", "2", "-1", "100", "0"])))"
        case 10: return "string.packsize(\(pick(["\"i4\"", "\"d\"", "\"s\"", "\"z\"", "\"!8 i3 d\"", "\"i16\"", "\"c10\"", "\"Xi8\"", "\"<>=\""])))"
        case 11: return "table.concat(\(smallTable()), \(pick(["nil", "\",\"", "\"\"", "1"])), \(pick(["nil", "1", "2", "0", "-1", "4"])), \(pick(["nil", "3", "2", "0", "1", "10", "math.maxinteger"])))"
        case 12: return "table.unpack(\(smallTable()), \(pick(["nil", "1", "2", "0", "-1", "math.mininteger"])), \(pick(["nil", "3", "0", "1", "5", "math.maxinteger", "1e7"])))"
        case 13: return "tbl(table.insert, \(smallTable())\(pick([", \"v\"", ", 1, \"v\"", ", 0, \"v\"", ", 5, \"v\"", ", -1, \"v\"", ", math.maxinteger, 1", ", 2, \"v\", 3", ""])))"
        case 14: return "tbl(table.remove, \(smallTable())\(pick(["", ", 1", ", 0", ", -1", ", 5", ", math.maxinteger", ", nil"])))"
        case 15:
            // Stock Lua moves math.maxinteger elements for (1, math.maxinteger): it would not end.
            let from = pick(["1", "0", "-1", "2", "math.mininteger"])
            let to = from == "1" || from == "2" ? pick(["3", "0", "-1", "2"]) : pick(["3", "0", "-1", "2", "math.maxinteger"])
            return "move(\(smallTable()), \(from), \(to), \(pick(["1", "2", "4", "0", "math.maxinteger"])))"
        case 16: return "tbl(table.sort, \(smallTable()), \(pick(["nil", "function(a, b) return a > b end", "function(a, b) return true end", "1"])))"
        case 17: return "utf8.char(\(pick(["72", "0x10FFFF", "0x7FFFFFFF", "-1", "0x80000000", "0", "233, 0x4E2D"])))"
        case 18: return "utf8.codepoint(\(utf8Subject()), \(pick(["nil", "1", "2", "-1", "0", "10"])), \(pick(["nil", "1", "-1", "3", "10"])), \(pick(["nil", "true"])))"
        case 19: return "utf8.len(\(utf8Subject()), \(pick(["nil", "1", "2", "-1", "0", "10", "-10"])), \(pick(["nil", "-1", "3", "10", "0"])), \(pick(["nil", "true"])))"
        case 20: return "utf8.offset(\(utf8Subject()), \(pick(["1", "2", "-1", "0", "3", "-3", "10"])), \(pick(["nil", "1", "2", "-1", "10", "0"])))"
        case 21: return "collect(utf8.codes(\(utf8Subject()), \(pick(["nil", "true"]))))"
        case 22: return "tonumber(\(pick(["\"10\"", "\"0x1p4\"", "\" 12 \"", "\"1e2\"", "\"z\"", "\"7fffffffffffffff\"", "\"ffffffffffffffffff\"", "\"-ff\"", "\"1.5\"", "\"\""])), \(pick(["nil", "2", "16", "36", "1", "37", "10.0"])))"
        case 23: return "math.tointeger(\(integer())), math.type(\(integer()))"
        case 24: return "select(\(pick(["1", "-1", "2", "'#'", "0", "-3", "math.maxinteger", "math.mininteger"])), \"a\", \"b\")"
        case 25: return "(\(i)) // (\(j)), (\(i)) % (\(j))"
        case 26: return "string.len(string.rep(\(s), 3, \",\")), #\(s)"
        case 27: return pick(["coroutine.resume(\(integer()))", "coroutine.wrap(\(integer()))", "coroutine.close(\(integer()))", "coroutine.create(\(integer()))",
                              "coroutine.resume(coroutine.create(function(a) return a, coroutine.yield(a) end), \(integer()))",
                              "coroutine.close(coroutine.create(function() end))", "coroutine.status(coroutine.create(tostring))"])
        case 28: return pick(["setmetatable(\(integer()), {})", "getmetatable(setmetatable({}, {__metatable = \(integer())}))",
                              "setmetatable(setmetatable({}, {__metatable = 1}), {})", "setmetatable({}, \(integer()))"])
        default: return "string.format(\"%s|%s\", \(s), \(integer()))"
        }
    }
}

/// A small, fast generator with a fixed sequence for a seed (Steele, Lea and Flood's SplitMix64).
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
