#!/usr/bin/env bash
# Instruction profile of moonhook's two request paths under callgrind: a fixed number of valid
# deliveries (durable, the handler doing `kv.incr` of the task's counter, counted until every one
# has been handled) and a fixed number of refused ones (wrong signature); and of its bare route
# (`GET /healthz`), the floor the HTTP stack sets. Instruction counts are
# the same from run to run whatever else the machine does, so two builds compare exactly.
#
#   bench/profile.sh                      # after: swift build -c release --product moonhook
#   REQUESTS=4000 TOP=40 bench/profile.sh
#
# Prints instructions per request on each path and the functions that cost most (inclusive and
# self), and leaves the callgrind files in OUT (default: a new temporary folder) for
# callgrind_annotate or kcachegrind.
set -euo pipefail

cd "$(dirname "$0")/.."
MOONHOOK=${MOONHOOK:-$PWD/.build/release/moonhook}
REQUESTS=${REQUESTS:-2000} CLIENTS=${CLIENTS:-8} TOP=${TOP:-30}
PORT=${PORT:-18951}
OUT=${OUT:-$(mktemp -d /tmp/moonhook-profile.XXXXXX)}
SECRET=bench-secret
mkdir -p "$OUT"

die() { echo "profile.sh: $*" >&2; exit 1; }
[ -x "$MOONHOOK" ] || die "no release build at $MOONHOOK (swift build -c release --product moonhook)"
source bench/lib.sh
need valgrind curl

WORK=$(mktemp -d)
# Under valgrind, finishing the work in flight takes longer: 30 s before SIGKILL.
trap 'stop_server 300; rm -rf "$WORK"' EXIT

# valgrind 3.19 reads no DWARF 5 (what Swift 6 writes): profile a copy without debug info (function
# names come from the symbol table). Its rt_sigsuspend wrapper writes into the mask it is given,
# which libdispatch keeps in read-only memory: a preloaded sigsuspend passes a copy.
objcopy --strip-debug "$MOONHOOK" "$WORK/moonhook"
cc -O2 -shared -fPIC -o "$WORK/sigsuspend-copy.so" bench/sigsuspend-copy.c

mkdir -p "$WORK/handlers/browser-use"
printf 'scheme: browser-use\nsecrets: ["%s"]\nid: header:X-Request-Id\n' "$SECRET" >"$WORK/handlers/browser-use/source.yaml"
cat >"$WORK/handlers/browser-use/agent.task.status_update.lua" <<'LUA'
return function(event)
  kv.incr("count:" .. event.body.payload.taskId)
end
LUA
printf 'admin_token: bench\n' >"$WORK/moonhook.yaml"

# Sends REQUESTS signed deliveries from CLIENTS keep-alive connections; each has its own id.
cat >"$WORK/send.py" <<'PY'
import hashlib, hmac, http.client, sys, threading
port, count, clients, secret, valid, run = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode(), sys.argv[5] == "valid", sys.argv[6]
body = b'{"type":"agent.task.status_update","timestamp":"2025-01-15T10:30:00Z","payload":{"taskId":"task_abc123def456","status":"finished","sessionId":"session_xyz789","output":"Found 3 results for the query; the cheapest flight leaves at 07:15 and costs 129 EUR.","steps":12,"cost":0.0421,"tags":["travel","search"]}}'
signature = hmac.new(secret, body, hashlib.sha256).hexdigest() if valid else "0" * 64
floor = sys.argv[5] == "floor"
answers = {}
lock = threading.Lock()
def client(number):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for index in range(number, count, clients):
        if floor:
            connection.request("GET", "/healthz")
        else:
            connection.request("POST", "/hooks/browser-use", body, {"Content-Type": "application/json", "X-Webhook-Signature": signature, "X-Request-Id": f"{run}-{index}"})
        response = connection.getresponse()
        response.read()
        with lock:
            answers[response.status] = answers.get(response.status, 0) + 1
threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(" ".join(f"{status}:{n}" for status, n in sorted(answers.items())))
PY

stats() { curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$PORT/admin/stats"; }
settled() {  # waits until no pair is pending or running
  for _ in $(seq 600); do
    stats | python3 -c 'import json,sys; p=json.load(sys.stdin)["pairs"]; sys.exit(0 if p["pending"]+p["running"]+p["retry"]==0 else 1)' && return 0
    sleep 0.5
  done
  die "the deliveries were not all handled"
}

top() {  # the TOP costliest functions of an annotation, names demangled
  grep -E '^ *[0-9,]+ ' "$1" | head -"$TOP" | sed 's/ \[.*\]$//; s/???://' | swift demangle --simplified | cut -c1-220 || true
}

profile() {  # path: valid | invalid | floor
  local path=$1 expected
  case $path in valid) expected="202:$REQUESTS" ;; invalid) expected="401:$REQUESTS" ;; floor) expected="200:$REQUESTS" ;; esac
  MOONHOOK_LOG_LEVEL=${MOONHOOK_LOG_LEVEL:-info} LD_PRELOAD="$WORK/sigsuspend-copy.so" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$path.callgrind" \
    "$WORK/moonhook" serve --config "$WORK/moonhook.yaml" --handlers "$WORK/handlers" --listen "127.0.0.1:$PORT" \
    --store "sqlite:$WORK/$path.sqlite" 2>"$WORK/$path.log" >/dev/null &
  SERVER=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
    kill -0 "$SERVER" 2>/dev/null || die "moonhook exited at start: $(cat "$WORK/$path.log")"
    sleep 0.2
  done
  # Warm up outside the count: the first requests load the handler and fill caches.
  python3 "$WORK/send.py" "$PORT" 200 "$CLIENTS" "$SECRET" "$path" "warm-$path" >/dev/null
  settled
  callgrind_control -i on "$SERVER" >/dev/null
  answers=$(python3 "$WORK/send.py" "$PORT" "$REQUESTS" "$CLIENTS" "$SECRET" "$path" "run-$path")
  [ "$path" = valid ] && settled
  callgrind_control -i off "$SERVER" >/dev/null
  callgrind_control -d "$SERVER" >/dev/null
  stop_server
  [ "$answers" = "$expected" ] || die "$path: answers $answers, expected $expected"
  local file total
  # The explicit dump holds the counted window; the one at exit, only what ran after it.
  file=$(ls -S "$OUT/$path.callgrind"* | head -1)
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "== $path: $REQUESTS requests, $(awk -v t="$total" -v n="$REQUESTS" 'BEGIN {printf "%.0f", t/n}') instructions per request ($total in all; $file)"
  callgrind_annotate --inclusive=yes --threshold=100 "$file" >"$OUT/$path.inclusive.txt" 2>/dev/null
  callgrind_annotate --threshold=100 "$file" >"$OUT/$path.self.txt" 2>/dev/null
  echo "-- inclusive"
  top "$OUT/$path.inclusive.txt"
  echo "-- self"
  top "$OUT/$path.self.txt"
}

echo "moonhook $(git describe --always --dirty 2>/dev/null || echo '?'), valgrind $(valgrind --version | cut -d- -f2), $REQUESTS requests from $CLIENTS connections"
profile valid
profile invalid
profile floor
echo
echo "Command: REQUESTS=$REQUESTS CLIENTS=$CLIENTS bench/profile.sh (files in $OUT)"
