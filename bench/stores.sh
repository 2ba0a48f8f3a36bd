#!/usr/bin/env bash
# Store benchmark: `moonhook serve` (release build), durable, its handler doing `kv.incr` of the
# task's counter, on SQLite, on PostgreSQL with one instance, and on PostgreSQL with two instances
# behind an nginx upstream; one run, one receiver at a time, loopback only. PostgreSQL is a
# throwaway cluster (fsync on) started by scripts/test-postgres.sh. Prints a Markdown table.
#
#   bench/stores.sh                # after: swift build -c release --product moonhook
#   DURATION=20s SERVER_CPUS=0 LOAD_CPUS=1 bench/stores.sh
#
# SERVER_CPUS pins moonhook, PG_CPUS PostgreSQL (by default the same: they share what a server
# gets), LOAD_CPUS wrk. Counters are read back (sqlite3, psql) and must equal the 2xx answers wrk counted.
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
DURATION=${DURATION:-10s} WARMUP=${WARMUP:-2s} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-1}
SERVER_CPUS=${SERVER_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1}
PG_CPUS=${PG_CPUS:-$SERVER_CPUS}
PORT=${PORT:-18941}
SECRET=bench-secret
COMMAND="DURATION=$DURATION CONNECTIONS=$CONNECTIONS SERVER_CPUS=$SERVER_CPUS PG_CPUS=$PG_CPUS LOAD_CPUS=$LOAD_CPUS bench/stores.sh"

die() { echo "stores.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"

source bench/lib.sh
need wrk curl openssl sqlite3 psql nginx postgresql

WORK=$(mktemp -d)
# A folder of its own: the postgres user must reach it, and WORK is private to us.
PGDIR=$(mktemp -d /tmp/moonhook-bench-postgres.XXXXXX)
SERVERS=()
NGINX=""
stop_servers() {
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVERS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVERS=()
  if [ -n "$NGINX" ]; then kill "$NGINX" 2>/dev/null || true; wait "$NGINX" 2>/dev/null || true; NGINX=""; fi
}
trap 'stop_servers; scripts/test-postgres.sh stop "$PGDIR" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

scripts/test-postgres.sh start "$PGDIR" >/dev/null || die "PostgreSQL did not start"
PGPORT=$(cat "$PGDIR/port")
# Every PostgreSQL process, and the backends it starts from now on.
for pid in $(pgrep -f "postgres.*$PGDIR" || true) $(head -1 "$PGDIR/data/postmaster.pid"); do taskset -a -cp "$PG_CPUS" "$pid" >/dev/null 2>&1 || true; done
psql_run() { psql -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U moonhook -d "$1" -c "$2"; }

BODY='{"type":"agent.task.status_update","timestamp":"2025-01-15T10:30:00Z","payload":{"taskId":"task_abc123def456","status":"finished","sessionId":"session_xyz789","output":"Found 3 results for the query; the cheapest flight leaves at 07:15 and costs 129 EUR.","steps":12,"cost":0.0421,"tags":["travel","search"]}}'
printf '%s' "$BODY" >"$WORK/body.json"
SIGNATURE=$(openssl dgst -sha256 -hmac "$SECRET" -r <"$WORK/body.json" | cut -d' ' -f1)

mkdir -p "$WORK/handlers/browser-use"
printf 'scheme: browser-use\nsecrets: ["%s"]\nid: header:X-Request-Id\n' "$SECRET" >"$WORK/handlers/browser-use/source.yaml"
cat >"$WORK/handlers/browser-use/agent.task.status_update.lua" <<'LUA'
return function(event)
  kv.incr("count:" .. event.body.payload.taskId)
end
LUA
printf 'admin_token: bench\n' >"$WORK/moonhook.yaml"

export BENCH_BODY=$WORK/body.json BENCH_SIGNATURE=$SIGNATURE

start_moonhook() {  # port store
  (cd "$WORK" && exec taskset -c "$SERVER_CPUS" env MOONHOOK_LOG_LEVEL=warning "$MOONHOOK" serve --config moonhook.yaml --handlers handlers \
    --listen "127.0.0.1:$1" --store "$2" 2>>"$WORK/server-$1.log") &
  SERVERS+=($!)
  for _ in $(seq 150); do
    curl -fs -o /dev/null "http://127.0.0.1:$1/readyz" && return 0
    sleep 0.1
  done
  die "moonhook on port $1 did not get ready: $(tail -5 "$WORK/server-$1.log")"
}

start_nginx() {  # port upstream-port...
  local listen=$1; shift
  {
    echo "worker_processes 1; pid $WORK/nginx.pid; error_log $WORK/nginx.log; daemon off;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off; upstream moonhook { keepalive 64;"
    for port in "$@"; do echo "  server 127.0.0.1:$port;"; done
    echo "} server { listen 127.0.0.1:$listen; location / { proxy_pass http://moonhook; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }"
  } >"$WORK/nginx.conf"
  taskset -c "$SERVER_CPUS" nginx -c "$WORK/nginx.conf" -p "$WORK" 2>>"$WORK/nginx.log" &
  NGINX=$!
  for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$listen/readyz" && return 0; sleep 0.1; done
  die "nginx did not start: $(cat "$WORK/nginx.log")"
}

# The counter once it has not moved for half a second.
settled() {
  local last now
  last=$(eval "$1")
  for _ in $(seq 120); do sleep 0.5; now=$(eval "$1"); [ "$now" = "$last" ] && break; last=$now; done
  echo "$last"
}

declare -A R
measure() {  # name url counter-command
  local name=$1 url=$2 counter=$3 requests rps p50 p99 status sockets before after
  BENCH_RUN=$name-warmup taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$PWD/bench/post-unique.lua" "$url" >/dev/null
  # Handlers run after the answer: the warm-up's first, until the counter stops moving.
  before=$(settled "$counter")
  local started ended
  started=$(date +%s.%N)
  read -r _ requests rps p50 p99 status sockets < <(BENCH_RUN=$name taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$PWD/bench/post-unique.lua" "$url" | grep '^RESULT') ||
    die "wrk printed no result for $name"
  after=$(settled "$counter")
  ended=$(date +%s.%N)
  R[$name.rps]=$rps R[$name.requests]=$requests
  # Handled per second: every delivery of the run handled, from the first request to the last
  # handler (a store whose handlers fall behind its receiver shows it here).
  R[$name.handled]=$(awk -v n=$((after - before)) -v a="$started" -v b="$ended" 'BEGIN {printf "%.0f", n / (b - a - 0.5)}')
  R[$name.lat]=$(awk -v a="$p50" -v b="$p99" 'BEGIN {printf "%.2f / %.2f ms", a/1000, b/1000}')
  R[$name.counted]=$((after - before))
  R[$name.errors]="$status non-2xx, $sockets socket errors"
  echo "$name: $requests requests, $rps req/s, counter +$((after - before)), ${R[$name.errors]}" >&2
}

# SQLite, one instance.
start_moonhook "$PORT" "sqlite:$WORK/store.sqlite"
measure sqlite "http://127.0.0.1:$PORT/hooks/browser-use" \
  "v=\$(sqlite3 -cmd '.timeout 5000' '$WORK/store.sqlite' \"SELECT value FROM kv WHERE key = 'count:task_abc123def456'\"); echo \${v:-0}"
stop_servers

# PostgreSQL, one instance, then two behind nginx; a database each.
for case in postgres-1 postgres-2; do
  db=${case//-/_}
  psql_run postgres "CREATE DATABASE $db" >/dev/null
  url="postgres://moonhook@127.0.0.1:$PGPORT/$db?sslmode=disable"
  counter="v=\$(psql -X -q -t -A -h 127.0.0.1 -p $PGPORT -U moonhook -d $db -c \"SELECT value FROM kv WHERE key = 'count:task_abc123def456'\"); echo \${v:-0}"
  if [ "$case" = postgres-1 ]; then
    start_moonhook "$PORT" "$url"
    measure "$case" "http://127.0.0.1:$PORT/hooks/browser-use" "$counter"
  else
    start_moonhook "$PORT" "$url"
    start_moonhook $((PORT + 1)) "$url"
    start_nginx $((PORT + 2)) "$PORT" $((PORT + 1))
    measure "$case" "http://127.0.0.1:$((PORT + 2))/hooks/browser-use" "$counter"
  fi
  stop_servers
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a/b}'; }
echo
echo "moonhook $(git describe --always --dirty 2>/dev/null || echo '?'); PostgreSQL $(psql --version | awk '{print $3}'); $(nproc) cores; moonhook on CPU $SERVER_CPUS, PostgreSQL on CPU $PG_CPUS, wrk on CPU $LOAD_CPUS; wrk -t$THREADS -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up"
echo
echo "| store | accepted req/s | vs SQLite | handled/s | vs SQLite | p50 / p99 | counter moved | errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for name in sqlite postgres-1 postgres-2; do
  echo "| $name | ${R[$name.rps]} | $(ratio "${R[$name.rps]}" "${R[sqlite.rps]}") | ${R[$name.handled]} | $(ratio "${R[$name.handled]}" "${R[sqlite.handled]}") | ${R[$name.lat]} | ${R[$name.counted]} of ${R[$name.requests]} | ${R[$name.errors]} |"
done
echo
echo "Command: $COMMAND"
