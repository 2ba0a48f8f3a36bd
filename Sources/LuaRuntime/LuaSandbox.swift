/// The Lua side of the sandbox, run once per state with the real standard library in reach.
///
/// It receives `internals` (host libraries, the step-limited pattern functions, `charge`, limits) and
/// returns `make_env()`, which builds one private `_ENV` per handler: an allow-list of globals with
/// fresh copies of every library table, so that a handler can change its own copies but nobody
/// else's. The only shared table left, the string metatable's `__index`, is unreachable because the
/// metatable is protected.
enum LuaSandbox {
    static let chunkName = "=moonhook.sandbox"

    static let source = #"""
    local internals = ...
    local charge, limits, host = internals.charge, internals.limits, internals.host

    local type, error, next, pcall, select, tostring, tonumber = type, error, next, pcall, select, tostring, tonumber
    local invocations = internals.invocations     -- the host's coroutines, one per invocation (weak keys)
    local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
    local real_load, real_collectgarbage = load, collectgarbage
    local table_concat, table_pack = table.concat, table.pack
    local coroutine_close, coroutine_running = coroutine.close, coroutine.running
    local coroutine_create, coroutine_wrap, coroutine_resume = coroutine.create, coroutine.wrap, coroutine.resume

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

    -- Each nested close runs in its own C frames; Lua 5.4.4 does not count them, so cap the depth.
    local close_depth = setmetatable({}, { __mode = "k" })
    local safe_coroutine = copy(coroutine)
    -- A new coroutine starts with a fresh hook counter: charge a full interval for it.
    function safe_coroutine.create(f)
      charge(limits.hook_interval)
      return coroutine_create(f)
    end
    function safe_coroutine.wrap(f)
      charge(limits.hook_interval)
      return coroutine_wrap(f)
    end
    -- The coroutines of invocations belong to the host: resuming one (from another invocation of
    -- the same handler, through a global) would hand it forged host results.
    function safe_coroutine.resume(co, ...)
      if invocations[co] then error("coroutine.resume: cannot resume a handler invocation", 2) end
      return coroutine_resume(co, ...)
    end
    function safe_coroutine.close(co)
      if invocations[co] then error("coroutine.close: cannot close a handler invocation", 2) end
      local depth = (close_depth[coroutine_running()] or 0) + 1
      if depth > limits.max_close_depth then error("coroutine.close: nested too deeply", 2) end
      if type(co) == "thread" then close_depth[co] = depth end
      return coroutine_close(co)
    end

    local function safe_setmetatable(t, mt)
      if type(mt) == "table" and (rawget(mt, "__gc") ~= nil or rawget(mt, "__mode") ~= nil) then
        error("setmetatable: __gc and __mode metatables are not allowed in handlers", 2)
      end
      -- Errors of the real one (a protected metatable) point at the handler, not at this wrapper.
      local ok, result = pcall(setmetatable, t, mt)
      if not ok then error(result, 2) end
      return result
    end

    -- The real xpcall runs its message handler at the point of the error, and for an error raised
    -- by the count hook that is with hooks off: a loop there would never be stopped. This one calls
    -- the handler after pcall has returned, as ordinary hooked code.
    local function xpcall_finish(handler, ok, ...)
      if ok then return true, ... end
      local handled, result = pcall(handler, (...))
      return false, result
    end
    local function safe_xpcall(f, handler, ...)
      if type(handler) ~= "function" then error("bad argument #2 to 'xpcall' (function expected)", 2) end
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
      env.setmetatable = safe_setmetatable
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
