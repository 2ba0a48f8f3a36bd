-- Tests for step_completed.lua: `moonhook test handlers/induced`.
local fixture = "../../fixtures/induced/step_completed.json"

return {
  {
    name = "the first step of a session starts its counter",
    event = fixture,
    expect = {
      result = { session = "browser_iwnx132n1", steps = 1 },
      kv = { ["steps:browser_iwnx132n1"] = 1 },
      logs = { { level = "info", message = "step completed" } },
    },
  },
  {
    name = "later steps add to the counter",
    event = fixture,
    kv = { ["steps:browser_iwnx132n1"] = 4 },
    expect = { kv = { ["steps:browser_iwnx132n1"] = 5 } },
  },
  {
    name = "a check function can read kv and the frozen time",
    event = fixture,
    now = "2026-03-01T08:00:00Z",
    check = function(r)
      expect(r.result.steps, 1)
      expect(kv.get("steps:browser_iwnx132n1"), 1)
      expect(os.date("!%Y-%m-%d %H:%M", os.time()), "2026-03-01 08:00")
    end,
  },
}
