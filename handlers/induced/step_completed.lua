-- Induced: one step of a session completed. Keep a per-session step counter.
return function(event)
  local session = event.body.sessionId
  local steps = kv.incr("steps:" .. session, 1, { ttl = 24 * 3600 })
  log.info("step completed", { session = session, step = event.body.data.step, steps = steps })
  return { session = session, steps = steps }
end
