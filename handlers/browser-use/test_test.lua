-- Tests for test.lua, the handler of the "test" event Browser Use's dashboard sends.
return {
  {
    name = "the dashboard's test event is answered",
    event = "../../fixtures/browser-use/test.json",
    expect = {
      type = "test",
      result = { ok = true },
      logs = { { level = "info", message = "test webhook received" } },
    },
  },
}
