import LuaRuntime

/// The globals a handler's environment holds and the members of each of its tables, read from a
/// live sandbox: what `moonhook check` takes as known, so it cannot disagree with the server.
struct SandboxNames: Sendable {
    var globals: Set<String>
    var members: [String: Set<String>]

    private static let listing = #"""
    local names = {}
    for name, value in pairs(_ENV) do
      local entry = true
      -- secrets is a view of the source's handler_secrets: its members differ per source.
      if type(value) == "table" and name ~= "_G" and name ~= "secrets" then
        entry = {}
        for key in pairs(value) do
          if type(key) == "string" then entry[#entry + 1] = key end
        end
      end
      names[name] = entry
    end
    return names
    """#

    /// Reads the names of a handler environment of `worker` (with `secrets`).
    static func read(from worker: LuaWorker) async throws -> SandboxNames {
        let module = try await worker.loadModule(
            path: "moonhook-check", source: Array(listing.utf8), extras: ["secrets": .table(array: [], fields: [:])],
            driver: "local names = ...\nreturn function() return names end")
        defer { Task { await worker.unload(module) } }
        guard case .table(_, let fields)? = try await worker.invoke(module, arguments: [], info: LuaInvocationInfo(handlerPath: "moonhook-check")).result.get().first
        else { throw HandlerTestError("cannot list the sandbox's names") }
        var names = SandboxNames(globals: Set(fields.keys), members: [:])
        for (name, value) in fields {
            if case .table(let array, _) = value { names.members[name] = Set(array.compactMap(\.text)) }
        }
        return names
    }
}
