-- One call of each bounded library function (and a few host functions) on inputs that make its C
-- loop long, timed with time.now(): how long one call runs before it is charged or refused.
-- .build/release/moonhook run bench/bounded-calls.lua --event fixtures/induced/browser_ready.json
return { timeout = 60, handle = function(e)
  local s4 = ('x'):rep(4e6)
  local t1k = {} for i = 1, 1000 do t1k[i] = s4 end
  local empty = {} for i = 1, 1e5 do empty[i] = '' end
  local cases = {
    {"rep '' 4e6", function() return string.rep('', 4000000) end},
    {"rep '' 2^62", function() return string.rep('', 1 << 62) end},
    {"unpack 999000", function() return select('#', table.unpack({}, 1, 999000)) end},
    {"move 1e6", function() return table.move({}, 1, 1e6, 1) end},
    {"sort 1000x4MB", function() return table.sort(t1k) end},
    {"concat 1e5 empty", function() return table.concat(empty) end},
    {"upper 4MB", function() return s4:upper() end},
    {"utf8.len 4MB", function() return utf8.len(s4) end},
    {"tonumber 4MB", function() return tonumber(('1'):rep(4e6), 2) end},
    {"find plain quadratic", function() return s4:find(('x'):rep(1e6) .. 'b', 1, true) end},
    {"gsub backtrack", function() return ('a'):rep(3000):gsub('.-.-b', '') end},
    {"json.decode 4MB", function() return json.decode('"' .. s4 .. '"') end},
    {"sha256 4MB", function() return crypto.sha256(s4) end},
    {"hex.encode 4MB", function() return hex.encode(s4) end},
  }
  for _, c in ipairs(cases) do
    local t0 = time.now()
    local ok, err = pcall(c[2])
    log.warn(string.format("%-22s %8.1f ms  %s", c[1], (time.now() - t0) * 1000, ok and "ok" or tostring(err):sub(1, 70)))
  end
end }
