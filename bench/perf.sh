#!/usr/bin/env bash
# Where the server's CPU goes under the benchmark's own load, sampled by `perf record` (the
# kernel's cpu-clock timer: this VM has no hardware counters): `moonhook serve` (release, durable)
# on one core (SERVER_CPUS, default 1), wrk on the other (LOAD_CPUS, default 0), CONNECTIONS (32)
# keep-alive connections, for each path in turn: valid deliveries whose handler does `kv.incr`,
# refused ones (wrong signature), and the bare route `GET /healthz`. bench/profile.sh counts
# instructions exactly but runs the server under valgrind, one thread at a time and with smaller
# write batches; this shows the same server as the benchmark runs it, kernel time included.
#
#   bench/perf.sh                     # after: swift build -c release --product moonhook
#   DURATION=20 TOP=40 bench/perf.sh
#
# Prints, per path, the requests served, the share of samples by library (the kernel included) and
# the symbols that cost most (self); leaves perf.data files in OUT (default: a new temporary folder).
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
DURATION=${DURATION:-10} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-2} TOP=${TOP:-25}
SERVER_CPUS=${SERVER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
PORT=${PORT:-18961}
OUT=${OUT:-$(mktemp -d /tmp/moonhook-perf.XXXXXX)}
mkdir -p "$OUT"

die() { echo "perf.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"
source bench/lib.sh
need perf wrk curl openssl taskset

WORK=$(mktemp -d)
trap 'stop_server; rm -rf "$WORK"' EXIT

seed_workload "$WORK"
printf 'admin_token: bench\n' >"$WORK/moonhook.yaml"
URL="http://127.0.0.1:$PORT/hooks/browser-use"
# Context switches of all the server's threads so far (voluntary and not): each is a thread
# hand-off or a wait, which on one core costs a trip through the scheduler.
context_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; }

echo "moonhook $(git describe --always --dirty 2>/dev/null || echo unknown), $(perf --version), $CONNECTIONS connections, ${DURATION} s per path"
for path in valid invalid floor; do
  (cd "$WORK" && exec taskset -c "$SERVER_CPUS" "$MOONHOOK" serve --config "$WORK/moonhook.yaml" --handlers "$WORK/handlers" \
    --listen "127.0.0.1:$PORT" --store "sqlite:$WORK/$path.sqlite" 2>>"$WORK/$path.log" >/dev/null) &
  SERVER=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
  kill -0 "$SERVER" 2>/dev/null || die "moonhook exited at start: $(cat "$WORK/$path.log")"
  export BENCH_BODY=$WORK/body.json BENCH_RUN=$path BENCH_SIGNATURE=$([ "$path" = valid ] && echo "$GOOD_SIG" || echo "$BAD_SIG")
  target=$URL
  if [ "$path" = floor ]; then export BENCH_GET=1; target="http://127.0.0.1:$PORT/healthz"; else unset BENCH_GET; fi
  # A second of warm-up, then the sampled run.
  BENCH_RUN=$path-warmup taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s bench/post-unique.lua "$target" >/dev/null
  switches_before=$(context_switches "$SERVER")
  perf record -q -e cpu-clock -F 999 -g -p "$SERVER" -o "$OUT/$path.perf.data" -- sleep "$DURATION" 2>/dev/null &
  recorder=$!
  result=$(taskset -c "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/post-unique.lua "$target" | grep '^RESULT')
  wait "$recorder" || true
  read -r _ requests rps _ p99 errors sockets <<<"$result"
  switches=$(($(context_switches "$SERVER") - switches_before))
  echo
  echo "== $path: $requests requests ($rps/s, p99 $((p99 / 1000)) ms, $errors non-2xx, $sockets socket errors);" \
    "$(awk -v s="$switches" -v n="$requests" 'BEGIN {printf "%.2f", s / n}') context switches per request; samples by library:"
  { perf report -i "$OUT/$path.perf.data" --no-children --sort dso --stdio 2>/dev/null || true; } | grep -E '^ +[0-9]' | head -12 || true
  echo "-- symbols (self)"
  { perf report -i "$OUT/$path.perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null || true; } | grep -E '^ +[0-9]' | head -"$TOP" | cut -c1-160 || true
  stop_server
done
echo
echo "perf.data files in $OUT (perf report -i FILE)"
