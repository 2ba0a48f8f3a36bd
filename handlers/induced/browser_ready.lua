-- Induced: the browser of a session is ready; its live view is at data.streamingUrl.
-- Remember it for a day, so that later handlers of the session can link to it.
return function(event)
  local session, url = event.body.sessionId, event.body.data.streamingUrl
  kv.set("stream:" .. session, url, { ttl = 24 * 3600 })
  log.info("browser ready", { session = session, stream = url })
  return { session = session, stream = url }
end
