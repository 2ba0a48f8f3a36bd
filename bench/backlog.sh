#!/usr/bin/env bash
# Memory under a backlog: `moonhook serve` (release build, durable) with a handler slower than the
# arrivals (it sleeps 50 ms, 16 slots: at most 320 handled per second), loaded with wrk until
# 10,000 and then 100,000 deliveries wait in the inbox. Prints the server's resident memory (VmRSS)
# with none queued, and once each mark is passed and the load has stopped.
#
#   bench/backlog.sh                  # after: swift build -c release --product moonhook
#   MARKS="10000 100000 300000" bench/backlog.sh
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
MARKS=${MARKS:-10000 100000} CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPUS=${SERVER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
PORT=${PORT:-18961}

die() { echo "backlog.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"

WORK=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/handlers/s"
printf 'scheme: none\nid: header:X-Request-Id\n' >"$WORK/handlers/s/source.yaml"
printf 'return function(event) time.sleep(50) end\n' >"$WORK/handlers/s/slow.lua"
printf 'admin_token: bench\nmax_concurrent_invocations: 16\n' >"$WORK/moonhook.yaml"
printf '%s' '{"type":"slow","payload":{"taskId":"task_abc123def456","status":"finished","output":"Found 3 results for the query; the cheapest flight leaves at 07:15."}}' >"$WORK/body.json"
export BENCH_BODY=$WORK/body.json

MOONHOOK_LOG_LEVEL=warning taskset -c "$SERVER_CPUS" "$MOONHOOK" serve --config "$WORK/moonhook.yaml" --handlers "$WORK/handlers" \
  --listen "127.0.0.1:$PORT" --store "sqlite:$WORK/store.sqlite" 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
rss() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$SERVER/status"; }
waiting() { curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$PORT/admin/stats" | python3 -c 'import json,sys; p=json.load(sys.stdin)["pairs"]; print(p["pending"]+p["retry"])'; }

sleep 1
echo "| deliveries waiting | resident memory (MiB) |"
echo "| ---: | ---: |"
echo "| 0 | $(rss) |"
round=0
for mark in $MARKS; do
  while [ "$(waiting)" -lt "$mark" ]; do
    round=$((round + 1))
    BENCH_RUN=r$round taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNECTIONS" -d5s -s "$PWD/bench/post-unique.lua" "http://127.0.0.1:$PORT/hooks/s" >/dev/null
  done
  sleep 1
  echo "| $(waiting) (mark $mark) | $(rss) |"
done
echo
echo "Handler: time.sleep(50), 16 slots; server on CPU $SERVER_CPUS, wrk -c$CONNECTIONS on CPU $LOAD_CPUS."
echo "Command: MARKS=\"$MARKS\" bench/backlog.sh"
