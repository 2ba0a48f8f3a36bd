-- wrk's request script for the benchmarks: POSTs the file BENCH_BODY as JSON, each request with a
-- new X-Request-Id (BENCH_RUN, the thread, a count: never a duplicate) and, when BENCH_SIGNATURE
-- is set, that X-Webhook-Signature; with BENCH_GET set, a plain GET of the URL instead. Prints
-- one line at the end: RESULT requests requests/s p50(us) p99(us) non-2xx socket-errors.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end
local body = io.open(os.getenv("BENCH_BODY")):read("*a")
local headers = {["Content-Type"] = "application/json", ["X-Webhook-Signature"] = os.getenv("BENCH_SIGNATURE")}
local prefix, sent
function init()
  prefix = os.getenv("BENCH_RUN") .. "-" .. tostring(number) .. "-"
  sent = 0
end
local get = os.getenv("BENCH_GET")
function request()
  if get then return wrk.format("GET") end
  sent = sent + 1
  headers["X-Request-Id"] = prefix .. sent
  return wrk.format("POST", nil, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.0f %d %d %d %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
