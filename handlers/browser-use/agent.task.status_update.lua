-- Browser Use: a task started, finished or stopped. The task lives under "payload".
-- When a task finishes, post one message to the team's chat webhook (secrets.CHAT_WEBHOOK_URL),
-- once per task even when Browser Use resends the event.

local function notify(text)
  local url = secrets.CHAT_WEBHOOK_URL
  if url == nil or url == "" then
    log.info("no chat webhook configured; not posting", { text = text })
    return
  end
  local response = http.post(url, { json = { text = text }, timeout = 5 })
  if response.status >= 300 then
    error("chat webhook answered " .. response.status)
  end
end

return {
  on = { "agent.task.*" },
  timeout = 10,
  handle = function(event)
    local task = event.body.payload
    local fields = { task = task.taskId, session = task.sessionId }
    if task.status == "started" then
      log.info("task started", fields)
    elseif task.status == "stopped" then
      log.warn("task stopped before finishing", fields)
    elseif task.status == "finished" then
      log.info("task finished", fields)
      -- kv.add succeeds for the first delivery of this task only: the idempotency key.
      local key = "notified:" .. task.taskId
      if not kv.add(key, true, { ttl = 7 * 24 * 3600 }) then
        log.info("already notified", fields)
        return { task = task.taskId, status = task.status, notified = false }
      end
      local finished = kv.incr("finished:" .. task.sessionId)
      local ok, err = pcall(notify, "Task " .. task.taskId .. " finished (" .. finished .. " so far in " .. task.sessionId .. ")")
      if not ok then
        kv.delete(key) -- let the retry notify
        error(err, 0)
      end
      return { task = task.taskId, status = task.status, notified = true }
    else
      error("unknown task status: " .. tostring(task.status))
    end
    return { task = task.taskId, status = task.status }
  end,
}
