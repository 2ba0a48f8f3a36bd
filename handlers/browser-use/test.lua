-- Browser Use sends "test" from its dashboard to check that the endpoint answers.
return function(event)
  log.info("test webhook received", { sent_at = event.body.timestamp })
  return { ok = true }
end
