-- Induced: the browser of a session is ready; its live view is at data.streamingUrl.
return function(event)
  local data = event.body.data
  log.info("browser ready", { session = event.body.sessionId, stream = data.streamingUrl })
  return { session = event.body.sessionId, stream = data.streamingUrl }
end
