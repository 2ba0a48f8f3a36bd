# Shared by the benchmark scripts (sourced, not run): installing what they need, and stopping the
# server they started.

# need TOOL...: installs the Debian packages of the tools that are missing (with sudo when not root).
need() {
  local missing=() packages=() tool
  for tool in "$@"; do
    case $tool in
      postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=("$tool") ;;
      *) command -v "$tool" >/dev/null || missing+=("$tool") ;;
    esac
  done
  ((${#missing[@]})) || return 0
  for tool in "${missing[@]}"; do
    case $tool in
      taskset) packages+=(util-linux) ;;
      perf) packages+=(linux-perf) ;;
      psql | postgresql) packages+=(postgresql) ;;
      nginx) packages+=(nginx-light) ;;
      *) packages+=("$tool") ;;
    esac
  done
  local sudo
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
}

# stop_server [TENTHS]: SIGTERM to $SERVER (moonhook finishes the work in flight), SIGKILL after
# TENTHS tenths of a second (default 100), then clears SERVER.
SERVER=""
stop_server() {
  [ -n "$SERVER" ] || return 0
  kill "$SERVER" 2>/dev/null || true
  for _ in $(seq "${1:-100}"); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

# seed_workload DIR: the seed workload of receiver.sh and perf.sh in DIR: body.json (a 309-byte
# Browser Use event), handlers/browser-use (signed with SECRET, the delivery id from X-Request-Id,
# a handler that checks the status and increments the task's counter with `kv.incr`); sets
# GOOD_SIG and BAD_SIG (the body's signature, and a wrong one).
SECRET=bench-secret
seed_workload() {
  local dir=$1
  printf '%s' '{"type":"agent.task.status_update","timestamp":"2025-01-15T10:30:00Z","payload":{"taskId":"task_abc123def456","status":"finished","sessionId":"session_xyz789","output":"Found 3 results for the query; the cheapest flight leaves at 07:15 and costs 129 EUR.","steps":12,"cost":0.0421,"tags":["travel","search"]}}' >"$dir/body.json"
  GOOD_SIG=$(openssl dgst -sha256 -hmac "$SECRET" -r <"$dir/body.json" | cut -d' ' -f1)
  BAD_SIG=$(printf '%064d' 0)
  mkdir -p "$dir/handlers/browser-use"
  printf 'scheme: browser-use\nsecrets: ["%s"]\nid: header:X-Request-Id\n' "$SECRET" >"$dir/handlers/browser-use/source.yaml"
  cat >"$dir/handlers/browser-use/agent.task.status_update.lua" <<'LUA'
return function(event)
  if event.body.payload.status ~= "finished" then error("unexpected status") end
  kv.incr("count:" .. event.body.payload.taskId)
end
LUA
}
