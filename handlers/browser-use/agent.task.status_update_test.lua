-- Tests for agent.task.status_update.lua: `moonhook test handlers/browser-use`.
-- Each case signs its event with Browser Use's scheme and posts it the server's way.
local fixture = "../../fixtures/browser-use/agent.task.status_update.json"
local chat = "https://chat.example.test/hooks/moonhook"

return {
  secrets = { CHAT_WEBHOOK_URL = chat },

  {
    name = "a finished task posts one chat message",
    event = fixture,
    http = { { method = "POST", url = chat, status = 200, body = "ok" } },
    expect = {
      result = { task = "task_abc123", status = "finished", notified = true },
      calls = { { method = "POST", url = chat, json = { text = "Task task_abc123 finished (1 so far in session_xyz)" } } },
      kv = { ["notified:task_abc123"] = true, ["finished:session_xyz"] = 1 },
      logs = { { level = "info", message = "^task finished$" } },
    },
  },
  {
    name = "a resent finished task does not post again",
    event = fixture,
    kv = { ["notified:task_abc123"] = true, ["finished:session_xyz"] = 1 },
    expect = {
      result = { task = "task_abc123", status = "finished", notified = false },
      calls = {},
      logs = { { message = "already notified" } },
    },
  },
  {
    name = "a chat outage fails the delivery and lets the retry notify",
    event = fixture,
    http = { { method = "POST", url = chat, status = 503, body = "down" } },
    expect = {
      error = "chat webhook answered 503",
      kv = { ["finished:session_xyz"] = 1 },
    },
  },
  {
    name = "a stopped task is logged as a warning",
    event = fixture,
    set = { ["/payload/status"] = "stopped" },
    expect = {
      result = { task = "task_abc123", status = "stopped" },
      logs = { { level = "warn", message = "stopped before finishing" } },
      kv = {},
      calls = {},
    },
  },
  {
    name = "an unknown status fails with its name",
    event = fixture,
    set = { ["/payload/status"] = "paused" },
    expect = { error = "unknown task status: paused" },
  },
  {
    name = "a task.created event reaches this handler through on",
    event = fixture,
    type = "agent.task.created",
    set = { ["/payload/status"] = "started" },
    expect = { type = "agent.task.created", handlers = { "browser-use/agent.task.status_update.lua" } },
  },
  {
    name = "a wrong signature is refused before any handler runs",
    event = fixture,
    headers = { ["X-Webhook-Signature"] = "0000" },
    expect = { refused = "signature" },
  },
}
