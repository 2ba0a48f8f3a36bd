#!/usr/bin/env bash
# Receiver benchmark: `moonhook serve` (release build) against adnanh/webhook, same workload, same
# run, one server at a time, loopback only, the server on one core (SERVER_CPUS, default 1) and wrk
# on the other (LOAD_CPUS, default 0). moonhook runs twice: durable (every delivery fsynced to its
# SQLite inbox before the 2xx, the default) and with durability off (`deliveries.durable: false`),
# to show what durability costs; its bare route (`GET /healthz`) is measured in the same run as the
# floor of the HTTP stack. Prints a Markdown table of ratios.
#
#   bench/receiver.sh              # after: swift build -c release --product moonhook
#   DURATION=30s CONNECTIONS=64 bench/receiver.sh
#
# Workload: a 309-byte Browser Use event signed like Browser Use does (X-Webhook-Signature = hex
# HMAC-SHA256 of the raw body), each request with its own delivery id (X-Request-Id), so that
# none is a duplicate; the handler checks the status and increments the task's counter with
# `kv.incr` (durable like the inbox), webhook's command appends a line to a file. moonhook answers
# before its handler runs: its figures count handled deliveries, not answers. The backlog left
# when the load stops is reported, the handled rate is requests over the time until the last one
# was handled, and CPU per request includes that drain. The invalid path sends the same body with
# a wrong signature.
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
DURATION=${DURATION:-10s} WARMUP=${WARMUP:-2s} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-2}
PORT=${PORT:-18931}
SERVER_CPUS=${SERVER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
COMMAND="DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS THREADS=$THREADS SERVER_CPUS=$SERVER_CPUS LOAD_CPUS=$LOAD_CPUS bench/receiver.sh"

die() { echo "receiver.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"

source bench/lib.sh
need webhook wrk curl openssl sqlite3 taskset

WORK=$(mktemp -d)
trap 'stop_server; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# moonhook: one source, one handler (bench/lib.sh); the delivery id comes from X-Request-Id. The
# counter is a key of the handler's key-value storage, read back at the end.
seed_workload "$WORK"
printf 'admin_token: bench\n' >"$WORK/durable.yaml"
printf 'admin_token: bench\ndeliveries:\n  durable: false\n' >"$WORK/nosync.yaml"

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
  (cd "$WORK" && exec taskset -c "$SERVER_CPUS" "$@" 2>>"$WORK/$name.log") &
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
# Pairs still to run (pending, running, retrying), from moonhook's admin API.
waiting() { curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$PORT/admin/stats" | python3 -c 'import json,sys; p=json.load(sys.stdin)["pairs"]; print(p["pending"]+p["running"]+p["retry"])'; }
now() { date +%s.%N; }

measure() {  # name path signature
  local name=$1 path=$2 t0 t1 requests rps p50 p99 status sockets started stopped drained backlog
  export BENCH_BODY=$WORK/body.json BENCH_SIGNATURE=$3 BENCH_RUN=$name-$path-warmup
  taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$PWD/bench/post-unique.lua" "$URL" >/dev/null
  export BENCH_RUN=$name-$path
  t0=$(settled_ticks)
  : >"$WORK/count"
  started=$(now)
  read -r _ requests rps p50 p99 status sockets < <(taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$PWD/bench/post-unique.lua" "$URL" | grep '^RESULT') ||
    die "wrk printed no result for $name $path"
  stopped=$(now)
  if [[ $name == moonhook* && $path == valid ]]; then
    # Handled, not answered: the backlog when the load stopped, and the time until it was gone.
    backlog=$(waiting)
    while [ "$(waiting)" != 0 ]; do sleep 0.05; done
    drained=$(now)
    R[$name.$path.backlog]=$backlog
    R[$name.$path.handled]=$(awk -v n="$requests" -v s="$status" -v a="$started" -v b="$drained" 'BEGIN {printf "%.0f", (n-s)/(b-a)}')
    R[$name.$path.drain]=$(awk -v a="$stopped" -v b="$drained" 'BEGIN {printf "%.2f s", b-a}')
  fi
  t1=$(settled_ticks)
  R[$name.$path.commands]=$(wc -l <"$WORK/count")
  R[$name.$path.requests]=$requests R[$name.$path.rps]=$rps
  R[$name.$path.lat]=$(awk -v a="$p50" -v b="$p99" 'BEGIN {printf "%.2f / %.2f ms", a/1000, b/1000}')
  R[$name.$path.cpu]=$(awk -v t=$((t1 - t0)) -v hz="$TICK" -v n="$requests" 'BEGIN {printf "%.1f", t*1e6/hz/n}')
  R[$name.$path.errors]="$status non-2xx/3xx, $sockets socket errors"
  echo "$name $path: $requests requests, ${R[$name.$path.errors]}" >&2
}

# moonhook's bare route, GET /healthz: what the HTTP stack costs with nothing behind it.
measure_floor() {
  local t0 t1 requests rps p50 p99 status sockets
  t0=$(settled_ticks)
  read -r _ requests rps p50 p99 status sockets < <(BENCH_GET=1 taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$PWD/bench/post-unique.lua" "http://127.0.0.1:$PORT/healthz" | grep '^RESULT') ||
    die "wrk printed no result for /healthz"
  t1=$(settled_ticks)
  R[floor.rps]=$rps
  R[floor.lat]=$(awk -v a="$p50" -v b="$p99" 'BEGIN {printf "%.2f / %.2f ms", a/1000, b/1000}')
  R[floor.cpu]=$(awk -v t=$((t1 - t0)) -v hz="$TICK" -v n="$requests" 'BEGIN {printf "%.1f", t*1e6/hz/n}')
}

counter() { sqlite3 -cmd ".timeout 5000" "$WORK/$1.sqlite" "SELECT coalesce((SELECT value FROM kv WHERE key = 'count:task_abc123def456'), 0)"; }

# Group-commit batches of a run: batches and writes so far, from the admin API.
batches() { curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$PORT/admin/stats" | python3 -c 'import json,sys; g=json.load(sys.stdin)["group_commit"]; print(g["batches"], g["writes"], g["largest_batch"])'; }

for mode in durable nosync; do
  start "moonhook-$mode" 202 401 env MOONHOOK_LOG_LEVEL=warning "$MOONHOOK" serve --config "$WORK/$mode.yaml" --handlers "$WORK/handlers" \
    --listen "127.0.0.1:$PORT" --store "sqlite:$WORK/$mode.sqlite"
  post "$GOOD_SIG" >/dev/null
  grep -q '"handlers":1' "$WORK/response" || die "moonhook ran no handler for the event: $(cat "$WORK/response")"
  read -r tx0 writes0 _ < <(batches)
  before=$(counter "$mode")
  measure "moonhook-$mode" valid "$GOOD_SIG"
  R[moonhook-$mode.counted]=$(($(counter "$mode") - before))
  read -r tx1 writes1 largest < <(batches)
  R[moonhook-$mode.batch]=$(awk -v t=$((tx1 - tx0)) -v w=$((writes1 - writes0)) -v l="$largest" 'BEGIN {printf "%d writes in %d batches (%.1f per batch, largest %d)", w, t, w/t, l}')
  [ "$mode" = durable ] && measure_floor
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
  rate=${R[$m.handled]:-${R[$m.rps]}}
  echo "| $label | $rate | ${R[$w.rps]} | $(ratio "$rate" "${R[$w.rps]}") | ${R[$m.lat]} | ${R[$w.lat]} | ${R[$m.cpu]} | ${R[$w.cpu]} | $(cpu_ratio "${R[$m.cpu]}" "${R[$w.cpu]}") |"
done
echo "| moonhook's floor: GET /healthz | ${R[floor.rps]} | | | ${R[floor.lat]} | | ${R[floor.cpu]} | | |"
cat <<EOF

- moonhook's valid rows count handled deliveries: valid 2xx answers over the time from the start of
  the load until the last pair was handled. Durable: ${R[moonhook-durable.valid.rps]} answers/s, a backlog of
  ${R[moonhook-durable.valid.backlog]} pairs when the load stopped, drained in ${R[moonhook-durable.valid.drain]}; the counter moved by
  ${R[moonhook-durable.counted]}. Durability off: ${R[moonhook-nosync.valid.rps]} answers/s, backlog ${R[moonhook-nosync.valid.backlog]}, drained in
  ${R[moonhook-nosync.valid.drain]}; the counter moved by ${R[moonhook-nosync.counted]}.
- Against moonhook's own floor (GET /healthz, same run): the durable valid path handles
  $(share "${R[moonhook-durable.valid.handled]}" "${R[floor.rps]}") of its rate at $(awk -v a="${R[moonhook-durable.valid.cpu]}" -v b="${R[floor.cpu]}" 'BEGIN {printf "%.1f×", a/b}') its CPU per request; the invalid path answers
  $(share "${R[moonhook-durable.invalid.rps]}" "${R[floor.rps]}") of its rate.
- Durability costs $(awk -v a="${R[moonhook-durable.valid.handled]}" -v b="${R[moonhook-nosync.valid.handled]}" 'BEGIN {printf "%.0f%%", 100*(1-a/b)}') of the handled rate
  (durable ${R[moonhook-durable.valid.handled]} vs ${R[moonhook-nosync.valid.handled]} per second with durability off).
- Group commit, durable run: ${R[moonhook-durable.batch]}.
  Durability off: ${R[moonhook-nosync.batch]}.
  Writes are the deliveries' appends, the handlers' key-value writes and the attempts' outcomes.
- CPU per request: utime+stime of the server process (/proc/PID/stat) plus cutime+cstime, its reaped
  children: webhook's command is a child process, so its CPU is included. Counted until the server
  went idle after the run, so work done after answering (the drain) is charged too.
- wrk: moonhook durable valid ${R[moonhook-durable.valid.errors]}, invalid ${R[moonhook-durable.invalid.errors]};
  durability off valid ${R[moonhook-nosync.valid.errors]};
  webhook valid ${R[webhook.valid.errors]}, invalid ${R[webhook.invalid.errors]}
  (a refusal is the expected answer on the invalid path: 401 from moonhook, 500 from webhook).
- moonhook logged ${R[moonhook-durable.failed]} + ${R[moonhook-nosync.failed]} handler failures, and $refusals refusals at warning level (one line each, to a file).
- webhook ran its command ${R[webhook.valid.commands]} times for ${R[webhook.valid.requests]} valid responses ($(share "${R[webhook.valid.commands]}" "${R[webhook.valid.requests]}")):
  it answers before spawning the command, and a spawn that fails (e.g. too many open files) is logged only with -verbose.
- Server on CPU $SERVER_CPUS, wrk on CPU $LOAD_CPUS.

Command: $COMMAND
EOF
