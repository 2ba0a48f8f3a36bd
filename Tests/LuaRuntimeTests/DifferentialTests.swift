import Foundation
import LuaRuntime
import Testing

/// Runs one program of generated cases in Debian's `lua5.4` (the oracle) and in the sandbox, and
/// compares what each case returned or raised. Both load the program under the same chunk name, so
/// error messages that carry a place carry the same one.
enum LuaDifferential {
    static let chunkName = "diff/case.lua"

    /// A handler-shaped program: its file returns a function that runs every case under pcall and
    /// returns one result per case, NUL-separated.
    static func program(_ cases: [String]) -> String {
        var text = #"""
            return function()
              local function ser(v, depth)
                local t = type(v)
                if t == "string" then return string.format("%q", (v:gsub("(%a+): 0x%x+", "%1: ADDRESS"))) end
                if t == "number" then
                  if math.type(v) == "integer" then return string.format("%d", v) end
                  if v ~= v then return "nan" end
                  return string.format("%.17g", v) .. "f"
                end
                if t == "table" then
                  if depth > 4 then return "{...}" end
                  local keys = {}
                  for k in next, v do keys[#keys + 1] = k end
                  local names = {}
                  for _, k in ipairs(keys) do names[k] = ser(k, 9) end
                  table.sort(keys, function(a, b) return names[a] < names[b] end)
                  local parts = {}
                  for n, k in ipairs(keys) do parts[n] = names[k] .. "=" .. ser(v[k], depth + 1) end
                  return "{" .. table.concat(parts, ",") .. "}"
                end
                if t == "function" then return "function" end
                return tostring(v)
              end
              local function collect(f, s, c)
                local out = {}
                for i = 1, 50 do
                  local r = table.pack(f(s, c))
                  if r[1] == nil then break end
                  c = r[1]
                  out[i] = r
                end
                return out
              end
              local function tbl(f, t, ...) f(t, ...) return t end
              local function move(t, f, e, p) return table.move(t, f, e, p) end
              local cases = {

            """#
        for item in cases {
            text += "    function() return \(item) end,\n"
        }
        text += #"""
              }
              local out = {}
              for i = 1, #cases do
                local r = table.pack(pcall(cases[i]))
                local parts = {}
                for k = 1, r.n do parts[k] = ser(r[k], 0) end
                out[i] = table.concat(parts, " ")
              end
              return table.concat(out, "\0")   -- %q writes newlines, never a NUL
            end

            """#
        return text
    }

    struct OracleMissing: Error, CustomStringConvertible {
        var description: String { "lua5.4 is not installed (make test installs it: apt-get install lua5.4)" }
    }

    /// The program's output in stock Lua.
    static func stock(_ program: String) throws -> [UInt8] {
        let interpreter = "/usr/bin/lua5.4"
        guard FileManager.default.isExecutableFile(atPath: interpreter) else { throw OracleMissing() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = ["-e", "io.write(assert(load(io.read('a'), '@\(chunkName)'))()())"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        // The program is a few hundred KiB: write it from another thread while this one reads.
        let writer = Thread {
            input.fileHandleForWriting.write(Data(program.utf8))
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Array(data)
    }

    /// The program's output in the sandbox, with limits no case comes near.
    static func sandbox(_ program: String) async throws -> [UInt8] {
        var limits = LuaLimits()
        limits.instructions = 1 << 40
        limits.wallClock = .seconds(300)
        limits.memoryBytes = 512 << 20
        let worker = try Harness.worker(limits: limits)
        defer { worker.shutdown() }
        let outcome = await Harness.run(program, path: chunkName, on: worker)
        let values = try outcome.result.get()
        guard case .string(let bytes)? = values.first else { throw LuaError(.runtime, "the program returned \(values)") }
        return bytes
    }
}

@Suite("Stock Lua 5.4 semantics where no limit is hit")
struct DifferentialTests {
    /// `make test` uses the fixed seed; `make fuzz-lua` sets both from its command line.
    static var seed: UInt64 { ProcessInfo.processInfo.environment["MOONHOOK_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_204 }
    static var patternCases: Int { ProcessInfo.processInfo.environment["MOONHOOK_FUZZ_CASES"].flatMap { Int($0) } ?? 10_000 }

    @Test func sandboxAgreesWithStockLua() async throws {
        var generator = LuaCaseGenerator(seed: Self.seed)
        let cases = generator.cases(patterns: Self.patternCases)
        // One program holds at most 131,071 functions (Lua's limit): larger runs go in batches.
        var stock: [String] = [], sandbox: [String] = []
        for start in stride(from: 0, to: cases.count, by: 50_000) {
            let program = LuaDifferential.program(Array(cases[start..<min(start + 50_000, cases.count)]))
            if let path = ProcessInfo.processInfo.environment["MOONHOOK_FUZZ_DUMP"] {
                try program.write(toFile: path, atomically: true, encoding: .utf8)   // to rerun a failure by hand
            }
            stock += try LuaDifferential.stock(program).split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            sandbox += try await LuaDifferential.sandbox(program).split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(stock.count == cases.count, "stock Lua printed \(stock.count) results for \(cases.count) cases")
        #expect(sandbox.count == cases.count, "the sandbox returned \(sandbox.count) results for \(cases.count) cases")
        var differences: [String] = []
        for (index, item) in cases.enumerated() where index < stock.count && index < sandbox.count && stock[index] != sandbox[index] {
            differences.append("\(item)\n    stock:   \(stock[index])\n    sandbox: \(sandbox[index])")
        }
        #expect(differences.isEmpty, "seed \(Self.seed): \(differences.count) of \(cases.count) cases differ; the first ones:\n\(differences.prefix(15).joined(separator: "\n"))")
        // The comparison means something only if the cases reach both outcomes and the whole grammar.
        #expect(stock.filter { $0.hasPrefix("true") }.count > cases.count / 4)
        #expect(stock.filter { $0.hasPrefix("false") }.count > cases.count / 20)
        for piece in ["%z", "%Z", "%b", "%f[", "()", "%1", "[^", "-", "+", "*", "?", "^", "$"] {
            #expect(cases.contains { $0.contains(piece) }, "no case uses \(piece)")
        }
    }
}
