#!/usr/bin/env bash
# Receiver benchmark: `moonhook serve` (release build) against adnanh/webhook, same workload, same
# run, one server at a time, loopback only. moonhook runs twice: durable (every delivery fsynced to
# its SQLite inbox before the 2xx, the default) and with durability off (`deliveries.durable:
# false`), to show what durability costs. Prints a Markdown table of ratios.
#
#   bench/receiver.sh              # after: swift build -c release --product moonhook
#   DURATION=30s CONNECTIONS=64 bench/receiver.sh
#
# Workload: a 309-byte Browser Use event signed like Browser Use does (X-Webhook-Signature = hex
# HMAC-SHA256 of the raw body), each request with its own delivery id (X-Request-Id), so that
# none is a duplicate; the handler checks the status and increments a counter. The invalid path
# sends the same body with a wrong signature.
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
DURATION=${DURATION:-10s} WARMUP=${WARMUP:-2s} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-2}
PORT=${PORT:-18931}
SECRET=bench-secret
COMMAND="DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS THREADS=$THREADS bench/receiver.sh"

die() { echo "receiver.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"

missing=()
for tool in webhook wrk curl openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

WORK=$(mktemp -d)
SERVER=""
stop_server() {  # moonhook drains its handlers on SIGTERM; give it 10 s, then SIGKILL
  [ -n "$SERVER" ] || return 0
  kill "$SERVER" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

BODY='{"type":"agent.task.status_update","timestamp":"2025-01-15T10:30:00Z","payload":{"taskId":"task_abc123def456","status":"finished","sessionId":"session_xyz789","output":"Found 3 results for the query; the cheapest flight leaves at 07:15 and costs 129 EUR.","steps":12,"cost":0.0421,"tags":["travel","search"]}}'
printf '%s' "$BODY" >"$WORK/body.json"
GOOD_SIG=$(openssl dgst -sha256 -hmac "$SECRET" -r <"$WORK/body.json" | cut -d' ' -f1)
BAD_SIG=$(printf '%064d' 0)

# moonhook: one source, one handler; the delivery id comes from X-Request-Id. The counter lives in
# the handler's state (one per Lua worker).
mkdir -p "$WORK/handlers/browser-use"
printf 'scheme: browser-use\nsecrets: ["%s"]\nid: header:X-Request-Id\n' "$SECRET" >"$WORK/handlers/browser-use/source.yaml"
printf 'admin_token: bench\n' >"$WORK/durable.yaml"
printf 'admin_token: bench\ndeliveries:\n  durable: false\n' >"$WORK/nosync.yaml"
cat >"$WORK/handlers/browser-use/agent.task.status_update.lua" <<'EOF'
local count = 0
return function(event)
  count = count + 1
  if event.body.payload.status ~= "finished" then error("unexpected status") end
end
EOF

# webhook: the same check and counter as a command, so it does the same work per event. One line
# appended per event (O_APPEND, no lock needed) keeps the counter cheap and checkable afterwards.
cat >"$WORK/count.sh" <<EOF
#!/bin/sh
[ "\$1" = finished ] || exit 1
echo >>"$WORK/count"
EOF
chmod +x "$WORK/count.sh"
cat >"$WORK/hooks.json" <<EOF
[{
  "id": "browser-use",
  "execute-command": "$WORK/count.sh",
  "pass-arguments-to-command": [{"source": "payload", "name": "payload.status"}],
  "trigger-rule-mismatch-http-response-code": 401,
  "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": "$SECRET",
                             "parameter": {"source": "header", "name": "X-Webhook-Signature"}}}
}]
EOF

# wrk's done() prints one machine-readable line: requests, req/s, p50 µs, p99 µs, non-2xx/3xx, socket errors.
# Every request carries a delivery id of its own: thread number, a per-run nonce and a counter.
cat >"$WORK/post.lua" <<'EOF'
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
function request()
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
EOF

URL="http://127.0.0.1:$PORT/hooks/browser-use"
TICK=$(getconf CLK_TCK)

# utime+stime+cutime+cstime: the server plus every child it has reaped (webhook's commands).
cpu_ticks() { local stat; stat=$(<"/proc/$1/stat"); awk '{print $12+$13+$14+$15}' <<<"${stat##*) }"; }

# Both servers finish work after answering (handlers, spawned commands): wait until the CPU count
# stops moving so that work is charged to the run that caused it.
settled_ticks() {
  local before after; after=$(cpu_ticks "$SERVER")
  for _ in $(seq 60); do
    sleep 0.5; before=$after; after=$(cpu_ticks "$SERVER")
    [ "$after" = "$before" ] && break
  done
  echo "$after"
}

post() { curl -s -o "$WORK/response" -w '%{http_code}' -H 'Content-Type: application/json' -H "X-Webhook-Signature: $1" -H "X-Request-Id: check-$RANDOM$RANDOM" --data-binary "@$WORK/body.json" "$URL"; }

start() {  # name valid-status invalid-status-pattern command...
  local name=$1 ok=$2 refused=$3; shift 3
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && die "something already listens on port $PORT (set PORT)"
  (cd "$WORK" && exec "$@" 2>>"$WORK/$name.log") &
  SERVER=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    kill -0 "$SERVER" 2>/dev/null || die "$name exited at start: $(cat "$WORK/$name.log")"
    sleep 0.1
  done
  local got
  got=$(post "$GOOD_SIG"); [ "$got" = "$ok" ] || die "$name answered $got to a valid signature, expected $ok"
  got=$(post "$BAD_SIG"); [[ $got == $refused ]] || die "$name answered $got to a bad signature, expected $refused"
}

declare -A R
measure() {  # name path signature
  local name=$1 path=$2 t0 t1 requests rps p50 p99 status sockets
  export BENCH_BODY=$WORK/body.json BENCH_SIGNATURE=$3 BENCH_RUN=$name-$path-warmup
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$WORK/post.lua" "$URL" >/dev/null
  export BENCH_RUN=$name-$path
  t0=$(settled_ticks)
  : >"$WORK/count"
  read -r _ requests rps p50 p99 status sockets < <(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/post.lua" "$URL" | grep '^RESULT') ||
    die "wrk printed no result for $name $path"
  t1=$(settled_ticks)
  R[$name.$path.commands]=$(wc -l <"$WORK/count")
  R[$name.$path.requests]=$requests R[$name.$path.rps]=$rps
  R[$name.$path.lat]=$(awk -v a="$p50" -v b="$p99" 'BEGIN {printf "%.2f / %.2f ms", a/1000, b/1000}')
  R[$name.$path.cpu]=$(awk -v t=$((t1 - t0)) -v hz="$TICK" -v n="$requests" 'BEGIN {printf "%.1f", t*1e6/hz/n}')
  R[$name.$path.errors]="$status non-2xx/3xx, $sockets socket errors"
  echo "$name $path: $requests requests, ${R[$name.$path.errors]}" >&2
}

# Group-commit batches of a run: batches and writes so far, from the admin API.
batches() { curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$PORT/admin/stats" | python3 -c 'import json,sys; g=json.load(sys.stdin)["group_commit"]; print(g["batches"], g["writes"], g["largest_batch"])'; }

for mode in durable nosync; do
  start "moonhook-$mode" 202 401 env MOONHOOK_LOG_LEVEL=warning "$MOONHOOK" serve --config "$WORK/$mode.yaml" --handlers "$WORK/handlers" \
    --listen "127.0.0.1:$PORT" --store "sqlite:$WORK/$mode.sqlite"
  post "$GOOD_SIG" >/dev/null
  grep -q '"handlers":1' "$WORK/response" || die "moonhook ran no handler for the event: $(cat "$WORK/response")"
  read -r tx0 writes0 _ < <(batches)
  measure "moonhook-$mode" valid "$GOOD_SIG"
  read -r tx1 writes1 largest < <(batches)
  R[moonhook-$mode.batch]=$(awk -v t=$((tx1 - tx0)) -v w=$((writes1 - writes0)) -v l="$largest" 'BEGIN {printf "%d writes in %d batches (%.1f per batch, largest %d)", w, t, w/t, l}')
  [ "$mode" = durable ] && measure "moonhook-$mode" invalid "$BAD_SIG"
  R[moonhook-$mode.failed]=$(grep -c 'handler failed' "$WORK/moonhook-$mode.log" || true)
  stop_server
done
refusals=$(grep -c 'webhook refused' "$WORK/moonhook-durable.log" || true)

# webhook answers 500 to a bad signature (its HMAC check errors rather than failing the rule): any 4xx/5xx.
start webhook 200 '[45]??' webhook -hooks "$WORK/hooks.json" -ip 127.0.0.1 -port "$PORT"
measure webhook valid "$GOOD_SIG"
measure webhook invalid "$BAD_SIG"
stop_server

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f×", a/b}'; }
cpu_ratio() { awk -v a="$1" -v b="$2" 'BEGIN {r = a/b; if (r < 1) printf "%.3f (1/%.0f)", r, 1/r; else printf "%.2f×", r}'; }
share() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f%%", 100*a/b}'; }

echo
echo "moonhook $(git describe --always --dirty 2>/dev/null || echo '?') vs $(webhook -version); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up"
echo
echo "| path | moonhook req/s | webhook req/s | ratio | moonhook p50 / p99 | webhook p50 / p99 | moonhook CPU µs/req | webhook CPU µs/req | CPU ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in durable.valid nosync.valid durable.invalid; do
  mode=${row%.*} path=${row#*.}
  m=moonhook-$mode.$path w=webhook.$path
  label="$path signature, $([ "$mode" = durable ] && echo durable || echo 'durability off')"
  echo "| $label | ${R[$m.rps]} | ${R[$w.rps]} | $(ratio "${R[$m.rps]}" "${R[$w.rps]}") | ${R[$m.lat]} | ${R[$w.lat]} | ${R[$m.cpu]} | ${R[$w.cpu]} | $(cpu_ratio "${R[$m.cpu]}" "${R[$w.cpu]}") |"
done
cat <<EOF

- Durability costs $(awk -v a="${R[moonhook-durable.valid.rps]}" -v b="${R[moonhook-nosync.valid.rps]}" 'BEGIN {printf "%.0f%%", 100*(1-a/b)}') of valid-path throughput
  (durable ${R[moonhook-durable.valid.rps]} vs ${R[moonhook-nosync.valid.rps]} req/s with durability off).
- Group commit, durable run: ${R[moonhook-durable.batch]}.
  Durability off: ${R[moonhook-nosync.batch]}.
  Inbox writes are the deliveries' appends plus the dispatcher's claims and outcomes.
- CPU per request: utime+stime of the server process (/proc/PID/stat) plus cutime+cstime, its reaped
  children: webhook's command is a child process, so its CPU is included. Counted until the server
  went idle after the run, so work done after answering is charged too.
- wrk: moonhook durable valid ${R[moonhook-durable.valid.errors]}, invalid ${R[moonhook-durable.invalid.errors]};
  durability off valid ${R[moonhook-nosync.valid.errors]};
  webhook valid ${R[webhook.valid.errors]}, invalid ${R[webhook.invalid.errors]}
  (a refusal is the expected answer on the invalid path: 401 from moonhook, 500 from webhook).
- moonhook logged ${R[moonhook-durable.failed]} + ${R[moonhook-nosync.failed]} handler failures, and $refusals refusals at warning level (one line each, to a file).
- webhook ran its command ${R[webhook.valid.commands]} times for ${R[webhook.valid.requests]} valid responses ($(share "${R[webhook.valid.commands]}" "${R[webhook.valid.requests]}")):
  it answers before spawning the command, and a spawn that fails (e.g. too many open files) is logged only with -verbose.

Command: $COMMAND
EOF
