#!/usr/bin/env bash
# Hot-reload benchmark: how long from writing a handler file to the new version handling events
# (reload latency), and what continuous rewrites cost in throughput, against the same load with no
# rewrites in the same run. Release build, loopback only, bounded.
#
#   swift build -c release --product moonhook && bench/reload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
PORT=${PORT:-18932}
REWRITES=${REWRITES:-20}
[ -x "$MOONHOOK" ] || { echo "no release build at $MOONHOOK" >&2; exit 1; }
command -v wrk >/dev/null || { SUDO=$([ "$(id -u)" = 0 ] || echo sudo); $SUDO apt-get install -y -qq wrk; }

WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/h/s"
printf 'scheme: none\n' > "$WORK/h/s/source.yaml"
handler() { printf "local n = 0\nreturn function(event) n = n + 1 if n %% 1000 == 1 then log.warn('ran %s') end end\n" "$1"; }
handler v0 > "$WORK/h/s/ping.lua"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"type":"ping"}'
wrk.headers["Content-Type"] = "application/json"
LUA
MOONHOOK_LOG_LEVEL=notice "$MOONHOOK" serve --handlers "$WORK/h" --listen 127.0.0.1:$PORT --store "sqlite:$WORK/s.sqlite" 2> "$WORK/log" &
SERVER=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done

now_ms() { date +%s%3N; }
# Latency: write version vN, then post until a handler logs "ran vN" (each handler logs on its
# first event, so the first event the new version handles shows).
latencies=()
for i in $(seq 1 "$REWRITES"); do
  start=$(now_ms)
  handler "v$i" > "$WORK/h/s/ping.lua.tmp" && mv "$WORK/h/s/ping.lua.tmp" "$WORK/h/s/ping.lua"
  until grep -q "ran v$i\"" "$WORK/log"; do
    curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"type":"ping"}' http://127.0.0.1:$PORT/hooks/s
  done
  latencies+=($(( $(now_ms) - start )))
done
sorted=($(printf '%s\n' "${latencies[@]}" | sort -n))
median=${sorted[$(( ${#sorted[@]} / 2 ))]}
worst=${sorted[-1]}

# Throughput: 10 s of load without rewrites, then 10 s with a rewrite every 200 ms.
quiet=$(wrk -t2 -c32 -d10s -s "$WORK/post.lua" http://127.0.0.1:$PORT/hooks/s | awk '/Requests\/sec/ {print $2}')
( for i in $(seq 1 50); do handler "w$i" > "$WORK/h/s/ping.lua.tmp"; mv "$WORK/h/s/ping.lua.tmp" "$WORK/h/s/ping.lua"; sleep 0.2; done ) &
WRITER=$!
busy_out=$(wrk -t2 -c32 -d10s -s "$WORK/post.lua" http://127.0.0.1:$PORT/hooks/s)
wait $WRITER
busy=$(echo "$busy_out" | awk '/Requests\/sec/ {print $2}')
errors=$(echo "$busy_out" | awk '/Non-2xx/ {print $4}')
reloads=$(grep -c '"source reloaded"' "$WORK/log" || true)

echo "| measure | value |"
echo "| --- | ---: |"
echo "| reload latency, file written to new version handling events (median of $REWRITES) | ${median} ms |"
echo "| reload latency, worst of $REWRITES | ${worst} ms |"
echo "| throughput, no rewrites | $quiet req/s |"
echo "| throughput, handler rewritten every 200 ms | $busy req/s ($(awk "BEGIN {printf \"%.2f\", $busy / $quiet}")× the quiet run) |"
echo "| non-2xx answers while rewriting | ${errors:-0} |"
echo "| reloads logged | $reloads |"
echo
echo "Command: REWRITES=$REWRITES bench/reload.sh"
