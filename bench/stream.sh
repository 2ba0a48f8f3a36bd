#!/usr/bin/env bash
# What live-stream readers cost the receiver: `moonhook serve` (release build) takes deliveries
# from wrk whose handler logs five lines each, three ways in one run: with no reader of
# GET /admin/stream, with READERS readers that read everything (curl), and with READERS readers
# that stop reading (scripts/stalled_reader.py), each on a new server with an empty store, the three
# taking turns ROUNDS times. Prints requests per second of each (the median of its rounds), their
# ratio to the first, and the events the stalled readers were told they lost.
#
#   bench/stream.sh                   # after: swift build -c release --product moonhook
#   READERS=8 DURATION=20s bench/stream.sh
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
READERS=${READERS:-4} DURATION=${DURATION:-10s} ROUNDS=${ROUNDS:-3} CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPUS=${SERVER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
PORT=${PORT:-18962}
PYTHON=${MOONHOOK_PYTHON:-python3}

die() { echo "stream.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"

WORK=$(mktemp -d)
SERVER=""
READER_PIDS=()
cleanup() {
  for pid in "${READER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/handlers/s"
printf 'scheme: none\nid: header:X-Request-Id\n' >"$WORK/handlers/s/source.yaml"
printf 'return function(e) for i = 1, 5 do log.info("step done", {step = i, id = e.id}) end end\n' >"$WORK/handlers/s/work.lua"
printf 'admin_token: bench\nlimits:\n  log_lines_per_second: 1000000\n' >"$WORK/moonhook.yaml"
printf '%s' '{"type":"work","payload":{"taskId":"task_abc123def456","status":"finished"}}' >"$WORK/body.json"
export BENCH_BODY=$WORK/body.json

# Durability off: the figure is the receiver's and the stream's work, not the disk's fsync.
printf 'deliveries:\n  durable: false\n' >>"$WORK/moonhook.yaml"

# Every measurement on a new server with an empty store: a store that grew during the rounds
# before would slow the later ones.
start_server() {
  rm -f "$WORK"/store.sqlite*
  MOONHOOK_LOG_LEVEL=warning taskset -c "$SERVER_CPUS" "$MOONHOOK" serve --config "$WORK/moonhook.yaml" --handlers "$WORK/handlers" \
    --listen "127.0.0.1:$PORT" --store "sqlite:$WORK/store.sqlite" 2>"$WORK/server.log" >/dev/null &
  SERVER=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
}
stop_server() {
  kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  SERVER=""
}
rate() {
  BENCH_RUN=$1 taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNECTIONS" -d"$2" -s "$PWD/bench/post-unique.lua" "http://127.0.0.1:$PORT/hooks/s" |
    awk '/^Requests\/sec:/ {printf "%.0f", $2}'
}
# Starts a server with READERS readers of KIND (none, reading, stalled), warms it up, and prints
# the rate of one measured run; stalled readers then read again and report what they lost.
measure() {
  local kind=$1 round=$2
  start_server
  READER_PIDS=()
  GO_FDS=()
  for i in $(seq "$READERS"); do
    case $kind in
      reading)
        taskset -c "$LOAD_CPUS" curl -s -N -H 'Authorization: Bearer bench' "http://127.0.0.1:$PORT/admin/stream" >/dev/null &
        READER_PIDS+=($!)
        ;;
      stalled)
        # Each stalled reader waits for a line on its fifo before it reads again.
        rm -f "$WORK/go-$i"
        mkfifo "$WORK/go-$i"
        taskset -c "$LOAD_CPUS" "$PYTHON" scripts/stalled_reader.py 127.0.0.1 "$PORT" bench <"$WORK/go-$i" >"$WORK/stalled-$i.out" &
        READER_PIDS+=($!)
        exec {fd}>"$WORK/go-$i"
        GO_FDS+=("$fd")
        ;;
    esac
  done
  sleep 1
  rate "$kind-$round-warm" 3s >/dev/null
  rate "$kind-$round" "$DURATION"
  if [ "$kind" = stalled ]; then
    for fd in "${GO_FDS[@]}"; do
      echo go >&"$fd"
      exec {fd}>&-
    done
    for i in $(seq "$READERS"); do
      wait "${READER_PIDS[$((i - 1))]}" 2>/dev/null || true
      count=$("$PYTHON" -c 'import json,sys; lines=open(sys.argv[1]).read().split("\n"); print(json.loads(lines[1])["dropped"] if len(lines) > 1 and lines[1] else 0)' "$WORK/stalled-$i.out")
      echo "$count" >>"$WORK/dropped"
    done
  fi
  for pid in "${READER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  READER_PIDS=()
  stop_server
}
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The three kinds take turns, ROUNDS times: a drift of the machine's speed touches each alike.
none_rates="" reading_rates="" stalled_rates=""
for round in $(seq "$ROUNDS"); do
  none_rates="$none_rates $(measure none "$round")"
  reading_rates="$reading_rates $(measure reading "$round")"
  stalled_rates="$stalled_rates $(measure stalled "$round")"
done
none=$(echo $none_rates | median)
reading=$(echo $reading_rates | median)
stalled=$(echo $stalled_rates | median)
dropped=$(awk '{ s += $1 } END { print s + 0 }' "$WORK/dropped" 2>/dev/null || echo 0)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "Rounds (requests/s): none$none_rates; reading$reading_rates; stalled$stalled_rates"
echo
echo "| live-stream readers | requests/s (median of $ROUNDS) | ratio to none |"
echo "| --- | ---: | ---: |"
echo "| none | $none | 1.00 |"
echo "| $READERS reading everything | $reading | $(ratio "$reading" "$none") |"
echo "| $READERS that stopped reading | $stalled | $(ratio "$stalled" "$none") |"
echo
echo "Events the stalled readers were told they lost, all rounds: $dropped (5 log lines, 1 delivery and 1 attempt per request)."
echo "Server on CPU $SERVER_CPUS; wrk -c$CONNECTIONS -d$DURATION and the readers on CPU $LOAD_CPUS."
echo "Command: READERS=$READERS DURATION=$DURATION ROUNDS=$ROUNDS bench/stream.sh"
