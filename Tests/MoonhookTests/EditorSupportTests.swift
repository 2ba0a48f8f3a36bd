import Foundation
import Logging
import LuaRuntime
import MoonhookStore
import Testing

@testable import Moonhook

/// `moonhook types` and what `moonhook check` finds in a handler's text.
@Suite(.timeLimit(.minutes(2))) struct EditorSupportTests {
    /// A worker with every host API, as the server builds it (its `http` sends nothing).
    static func worker() throws -> LuaWorker {
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let http = HTTPAPI.library(policy: OutboundPolicy(), metrics: nil) { _, _ in throw LuaHostError("not here") }
        return try LuaWorker(libraries: HandlerRuntime.libraries(logger: logger, limits: LuaLimits(), store: MemoryKeyValueStore(), time: TimeAPI.library(), http: http))
    }

    @Test func theDefinitionFileDeclaresExactlyWhatTheSandboxHas() async throws {
        let worker = try Self.worker()
        defer { worker.shutdown() }
        let names = try await SandboxNames.read(from: worker)
        let text = HandlerTypes.definitions()
        // Every `---@class moonhook.X` block's fields, by table.
        var declared: [String: Set<String>] = [:]
        var current: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("---@class moonhook.") { current = String(line.dropFirst("---@class moonhook.".count)) }
            if line.hasPrefix("---@field "), let current { declared[current, default: []].insert(String(line.split(separator: " ")[1])) }
        }
        for library in ["json", "log", "time", "kv", "http", "crypto", "hex", "base64", "os"] {
            #expect(declared[library] == names.members[library], "\(library): declared \(declared[library] ?? []), the sandbox has \(names.members[library] ?? [])")
        }
        #expect(names.globals.contains("uuid") && text.contains("---@type fun(): string\nuuid = nil"))
        #expect(text.hasPrefix("---@meta moonhook\n"))
        #expect(text.contains("---@field incr fun(key: string, by?: integer, options?: {ttl?: number}): integer Adds by (default 1)"))
        #expect(declared["expect"] == ["match"])
    }

    static func findings(_ source: String, extra: Set<String> = []) async throws -> [String] {
        let worker = try Self.worker()
        defer { worker.shutdown() }
        let lint = HandlerLint(names: try await SandboxNames.read(from: worker))
        return lint.findings(path: "s/a.lua", source: Array(source.utf8), extraGlobals: extra).map(\.description)
    }

    @Test func checkFindsUnknownGlobalsAndMembersWithTheClosestName() async throws {
        let findings = try await Self.findings(
            """
            local M = {}
            function M.helper(x, ...) return x end
            function M:method() return self end
            local t <const> = { conifg = 1, ["k"] = 2, nested = { deeper = true } }
            counter = 0
            a, b = 1, 2
            return function(event)
              local n = kv.incrby("x", 1)
              log.inf("x")
              kv.mine = 1                         -- a handler may add to its own copy
              local s = string.upper("a") .. ("b"):rep(2) .. os.date() .. string.formatt("x")
              for k, v in pairs(event) do print(k, v, a, b, counter) end
              local url = confg.url --[[ comment: nocomment ]] -- nocomment
              local text = [==[ nolongstring ]==] .. "nostring" .. 'nostring2'
              goto done
              ::done::
              return M.helper(tbl) + json.decode("1") + #secrets + 0x1p-4 + 1e+5 + .5 + secrets.ANY_NAME:len() + io.write("x")
            end
            """)
        #expect(findings == [
            "s/a.lua:8: unknown member 'kv.incrby' (did you mean 'kv.incr'?)",
            "s/a.lua:9: unknown member 'log.inf' (did you mean 'log.info'?)",
            "s/a.lua:11: unknown member 'string.formatt' (did you mean 'string.format'?)",
            "s/a.lua:13: unknown global 'confg'",
            "s/a.lua:17: unknown global 'tbl'",
            "s/a.lua:17: unknown global 'io'",
        ])
        #expect(try await Self.findings("expect(1, 1)", extra: ["expect"]) == [])
        #expect(try await Self.findings("expect(1, 1)") == ["s/a.lua:1: unknown global 'expect'"])
        #expect(try await Self.findings("return function() return pirnt('x') end") == ["s/a.lua:1: unknown global 'pirnt' (did you mean 'print'?)"])
    }

    @Test func checkReportsUnknownMembersAndWarnsOfAStaleDefinitionFile() async throws {
        let handlers = try TestHandlers(copyExamples: false)
        defer { handlers.remove() }
        try handlers.write("s/source.yaml", "scheme: none\n")
        try handlers.write("s/a.lua", "return function() return kv.incrby('x') end")
        let written = try await MoonhookProcess.detached { try MoonhookProcess.run(["types", "--handlers", handlers.folder.path]) }
        #expect(written.status == 0 && written.out == "wrote \(handlers.folder.appending(path: "moonhook.d.lua").path)\n")
        let fresh = try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path]) }
        #expect(fresh.status == 1)
        #expect(fresh.out == "s/a.lua:1: unknown member 'kv.incrby' (did you mean 'kv.incr'?)\n 1 | return function() return kv.incrby('x') end\nok: s (none, 1 handlers)\n", "\(fresh.out)")
        try handlers.write("s/a.lua", "return function() return kv.incr('x') end")
        #expect(try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path]) }.status == 0)
        try handlers.write("moonhook.d.lua", "---@meta moonhook\n-- an older moonhook's\n")
        let stale = try await MoonhookProcess.detached { try MoonhookProcess.run(["check", "--handlers", handlers.folder.path]) }
        #expect(stale.status == 0, "a stale definition file is a warning, not a problem")
        #expect(stale.out.contains("\nwarning: moonhook.d.lua: stale: it does not describe this moonhook's API ("), "\(stale.out)")
        let printed = try await MoonhookProcess.detached { try MoonhookProcess.run(["types", "-o", "-"]) }
        #expect(printed.out == HandlerTypes.definitions())
    }
}
