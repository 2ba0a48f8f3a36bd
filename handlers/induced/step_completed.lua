-- Induced: one step of a session completed.
return function(event)
  local data = event.body.data
  log.info("step completed", { session = event.body.sessionId, step = data.step, status = data.status })
  return { session = event.body.sessionId, step = data.step }
end
