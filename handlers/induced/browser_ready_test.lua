-- Tests for browser_ready.lua.
return {
  {
    name = "the live view is kept for the session",
    event = "../../fixtures/induced/browser_ready.json",
    check = function(r)
      local session = r.result.session
      expect.match(session, "^browser_")
      expect(r.kv["stream:" .. session], r.result.stream)
    end,
  },
  {
    name = "an event Induced never sends has no handler",
    event = "../../fixtures/induced/browser_ready.json",
    type = "browser_gone",
    expect = { handlers = {} },
  },
}
