import Foundation
import Logging
import LuaRuntime
import MoonhookStore

/// The host API as lua-language-server sees it: a `---@meta` definition file written from the
/// declarations each library makes where it registers its functions (`LuaLibrary.declarations`),
/// so that the file says what this moonhook offers. `moonhook types` writes it, `moonhook new`
/// puts it beside the handlers, `moonhook check` says when a checked-in copy is stale.
public enum HandlerTypes {
    /// The file's name in a handlers folder.
    public static let fileName = "moonhook.d.lua"

    /// Every library handlers get, built as the server builds them, for their declarations
    /// (nothing is called, nothing is sent).
    static func libraries() -> [LuaLibrary] {
        let logger = Logger(label: "moonhook-types") { _ in SwiftLogNoOpLogHandler() }
        let http = HTTPAPI.library(policy: OutboundPolicy(), metrics: nil) { _, _ in throw LuaHostError("http: not available here") }
        return [LuaJSONLibrary.library()]
            + HandlerRuntime.libraries(logger: logger, limits: LuaLimits(), store: MemoryKeyValueStore(), time: TimeAPI.library(), http: http)
    }

    /// The definition file.
    public static func definitions() -> String {
        var lines = [
            "---@meta moonhook",
            "-- The host API of moonhook \(MoonhookVersion.current) for lua-language-server: what handlers see besides",
            "-- Lua 5.4's standard library. Written by `moonhook types`; `moonhook check` says when it is stale.",
            "",
        ]
        func describe(_ summary: String) -> String { summary.isEmpty ? "" : " " + summary }
        for library in libraries() {
            if library.name == "_G" {
                for declaration in library.declarations {
                    lines += ["---\(declaration.summary)", "---@type \(declaration.type)", "\(declaration.name) = nil", ""]
                }
                continue
            }
            lines.append("---@class moonhook.\(library.name)")
            for declaration in library.declarations { lines.append("---@field \(declaration.name) \(declaration.type)\(describe(declaration.summary))") }
            lines += ["\(library.name) = {}", ""]
        }
        lines += ["---The sandbox keeps three functions of `os`.", "---@class moonhook.os"]
        for declaration in LuaSandbox.osDeclarations { lines.append("---@field \(declaration.name) \(declaration.type)\(describe(declaration.summary))") }
        lines += ["os = {}", ""]
        lines += [
            "---The source's handler_secrets (source.yaml), by name, from the environment; read-only.",
            "---@type table<string, string>",
            "secrets = {}",
            "",
            "---In *_test.lua files only: fails the case unless actual equals expected (tables by content).",
            "---@class moonhook.expect",
        ]
        for declaration in HandlerTestLua.declarations { lines.append("---@field \(declaration.name) \(declaration.type)\(describe(declaration.summary))") }
        lines += ["---@overload fun(actual: any, expected: any, message?: string)", "expect = {}", ""]
        return lines.joined(separator: "\n")
    }

    /// The `.luarc.json` `moonhook new` writes: Lua 5.4, without the libraries the sandbox leaves
    /// out (its `os` comes from the definition file).
    public static let luarc = """
        {
          "$schema": "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
          "runtime.version": "Lua 5.4",
          "runtime.builtin": { "io": "disable", "os": "disable", "debug": "disable", "package": "disable" },
          "workspace.library": ["\(fileName)"]
        }

        """
}
