-- Browser Use: a task started, finished or stopped. The task lives under "payload".
return {
  on = { "agent.task.*" },
  timeout = 10,
  handle = function(event)
    local task = event.body.payload
    if task.status == "started" then
      log.info("task started", { task = task.taskId, session = task.sessionId })
    elseif task.status == "finished" then
      log.info("task finished", { task = task.taskId, session = task.sessionId })
    elseif task.status == "stopped" then
      log.warn("task stopped before finishing", { task = task.taskId, session = task.sessionId })
    else
      error("unknown task status: " .. tostring(task.status))
    end
    return { task = task.taskId, status = task.status }
  end,
}
