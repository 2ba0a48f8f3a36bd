import LuaRuntime

/// The Lua half of `moonhook test`, trusted code that `LuaWorker.loadModule` runs outside the
/// sandbox around a test file.
enum HandlerTestLua {
    /// `expect.match`, as editors should see it (`expect(...)` itself is its `__call`).
    static let declarations = [
        LuaDeclaration(name: "match", type: "fun(text: string, pattern: string, message?: string)", summary: "Fails the case unless text matches the Lua pattern")
    ]

    /// Gives the test file's environment `expect`: `expect(actual, expected [, message])` fails the
    /// case unless the two are equal (tables by content), `expect.match(text, pattern [, message])`
    /// unless `text` matches the Lua pattern. Either failure points at the line that called it.
    static let prelude = #"""
    local env = ...
    local type, next, ipairs, tostring, error, setmetatable = type, next, ipairs, tostring, error, setmetatable
    local find, format, sort, concat = string.find, string.format, table.sort, table.concat

    local function equal(a, b, depth)
      if a == b then return true end
      if type(a) ~= "table" or type(b) ~= "table" or depth > 100 then return false end
      for k, v in next, a do
        if not equal(v, b[k], depth + 1) then return false end
      end
      for k in next, b do
        if a[k] == nil then return false end
      end
      return true
    end

    local function show(value, depth)
      if type(value) == "string" then return format("%q", value) end
      if type(value) ~= "table" then return tostring(value) end
      if depth > 3 then return "{...}" end
      local keys, count = {}, 0
      for k in next, value do
        count = count + 1
        keys[count] = k
      end
      local parts = {}
      if count == #value then
        for i = 1, count do parts[i] = show(value[i], depth + 1) end
      else
        sort(keys, function(x, y) return tostring(x) < tostring(y) end)
        for i, k in ipairs(keys) do
          local name = type(k) == "string" and find(k, "^[%a_][%w_]*$") and k or "[" .. show(k, depth + 1) .. "]"
          parts[i] = name .. " = " .. show(value[k], depth + 1)
        end
      end
      return "{" .. concat(parts, ", ") .. "}"
    end

    local function prefix(message) return message ~= nil and tostring(message) .. ": " or "" end

    local expect = setmetatable({}, {
      __call = function(_, actual, expected, message)
        if not equal(actual, expected, 0) then
          error(prefix(message) .. "expected " .. show(expected, 0) .. ", got " .. show(actual, 0), 2)
        end
      end,
      __metatable = false,
    })
    function expect.match(text, pattern, message)
      if type(text) ~= "string" or not find(text, pattern) then
        error(prefix(message) .. "expected text matching " .. format("%q", tostring(pattern)) .. ", got " .. show(text, 0), 2)
      end
    end
    env.expect = expect
    """#

    /// Receives what the test file returned and returns the function `moonhook test` invokes:
    /// `("cases")` gives the cases as plain data (a function reads as `true`), `("check", i, r)`
    /// calls case i's `check` with the case's observations, `("match", texts, pattern)` tells
    /// which texts match a Lua pattern, as `string.find` does.
    static let driver = #"""
    local cases = ...
    local type, next, ipairs, error, find = type, next, ipairs, error, string.find

    local function plain(value, depth)
      if type(value) == "function" then return true end
      if type(value) ~= "table" then return value end
      if depth > 32 then error("the cases nest tables more than 32 deep", 0) end
      local copy = {}
      for k, v in next, value do copy[k] = plain(v, depth + 1) end
      return copy
    end

    return function(operation, index, argument, pattern)
      if operation == "cases" then
        if type(cases) ~= "table" then error("a test file must return a table of cases", 0) end
        return plain(cases, 0)
      elseif operation == "check" then
        return cases[index].check(argument)
      elseif operation == "match" then
        local matched = {}
        for i, text in ipairs(argument) do matched[i] = find(text, pattern) ~= nil end
        return matched
      end
      error("unknown operation", 0)
    end
    """#
}
