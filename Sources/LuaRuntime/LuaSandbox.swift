/// The Lua side of the sandbox, run once per state with the real standard library in reach.
///
/// It receives `internals` (host libraries and `charge`; the bounded and guarded C functions are in
/// the library tables already, see library.c) and
/// returns `make_env()`, which builds one private `_ENV` per handler: an allow-list of globals with
/// fresh copies of every library table, so that a handler can change its own copies but nobody
/// else's. The only shared table left, the string metatable's `__index`, is unreachable because the
/// metatable is protected.
public enum LuaSandbox {
    static let chunkName = "=moonhook.sandbox"

    /// The `os` the sandbox keeps (`os_subset` below), as editors should see it.
    public static let osDeclarations = [
        LuaDeclaration(name: "time", type: "fun(date?: osdateparam): integer", summary: "Unix time in whole seconds, now or of a date table"),
        LuaDeclaration(name: "clock", type: "fun(): number", summary: "CPU seconds used by the process"),
        LuaDeclaration(name: "date", type: "fun(format?: string, time?: integer): string|osdate", summary: "A time formatted as strftime does (\"!\" first: UTC), or as a table with \"*t\""),
    ]

    static let source = #"""
    local internals = ...
    local charge, host = internals.charge, internals.host

    local type, error, next, pcall, select, tostring, tonumber = type, error, next, pcall, select, tostring, tonumber
    local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
    local real_load, real_collectgarbage = load, collectgarbage
    local table_concat, table_pack = table.concat, table.pack

    local function copy(source, skip)
      local result = {}
      for k, v in next, source do
        if not (skip and skip[k]) then result[k] = v end
      end
      return result
    end

    -- string, table, utf8 and tonumber already hold the bounded C functions (library.c) and the
    -- step-limited pattern functions: the sandbox only copies them.
    local safe_string = copy(string, { dump = true })
    local safe_table = copy(table)

    -- coroutine and setmetatable hold the guarded C functions (library.c): copied as they are.
    local safe_coroutine = copy(coroutine)

    -- The real xpcall runs its message handler at the point of the error, and for an error raised
    -- by the count hook that is with hooks off: a loop there would never be stopped. This one calls
    -- the handler after pcall has returned, as ordinary hooked code.
    local function xpcall_finish(handler, ok, ...)
      if ok then return true, ... end
      local handled, result = pcall(handler, (...))
      return false, result
    end
    local function safe_xpcall(f, handler, ...)
      if type(handler) ~= "function" then error("bad argument #2 to 'xpcall' (function expected, got " .. (handler == nil and "nil" or type(handler)) .. ")", 2) end
      return xpcall_finish(handler, pcall(f, ...))
    end

    local function safe_collectgarbage(option)
      if option == nil or option == "count" then return real_collectgarbage("count") end
      error("collectgarbage: only \"count\" is available in handlers", 2)
    end

    local os_subset = { time = os.time, clock = os.clock, date = os.date }
    local plain_globals = {
      "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
      "rawset", "select", "tonumber", "tostring", "type", "getmetatable", "_VERSION",
    }
    local globals = {}
    for _, name in next, plain_globals do globals[name] = _G[name] end

    -- Lock the string metatable: handlers reach string methods through it, so it must be neither
    -- readable nor writable.
    local string_metatable = getmetatable("")
    string_metatable.__index = copy(safe_string)
    string_metatable.__metatable = false

    -- A read-only view of `values` for one handler (its source's secrets): readable, iterable,
    -- never writable, and the table behind it is out of reach.
    local function readonly(name, values)
      return setmetatable({}, {
        __index = values,
        __newindex = function() error(name .. " is read-only", 2) end,
        __pairs = function() return function(_, key) return next(values, key) end, nil, nil end,
        __len = function() return #values end,
        __metatable = false,
      })
    end

    return function(extras)
      local env = copy(globals)
      env._G = env
      env.setmetatable = setmetatable
      env.xpcall = safe_xpcall
      env.collectgarbage = safe_collectgarbage
      env.string = copy(safe_string)
      env.table = copy(safe_table)
      env.coroutine = copy(safe_coroutine)
      env.math = copy(math)
      env.utf8 = copy(utf8)
      env.os = copy(os_subset)
      for name, library in next, host do
        if name == "_G" then
          for key, value in next, library do env[key] = value end   -- host functions meant as globals
        else
          env[name] = copy(library)
        end
      end
      env.load = function(chunk, name, mode, chunk_env)
        if type(chunk) ~= "string" then return nil, "load: handlers may load source strings only" end
        charge(#chunk // 16)   -- compiling runs in C
        if mode ~= nil and mode ~= "t" then return nil, "load: handlers may load text chunks only" end
        if chunk_env == nil then chunk_env = env end
        -- "=" names cannot pose as another handler's file in error messages.
        return real_load(chunk, "=" .. tostring(name or "(load)"), "t", chunk_env)
      end
      if env.log ~= nil then
        local log_info = env.log.info
        env.print = function(...)
          local parts = table_pack(...)
          for i = 1, parts.n do parts[i] = tostring(parts[i]) end
          log_info(table_concat(parts, "\t", 1, parts.n))
        end
      end
      for name, values in next, extras or {} do env[name] = readonly(name, values) end
      return env
    end
    """#
}
