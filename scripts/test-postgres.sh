#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `start DIR` initialises one in DIR on a free
# loopback port (as the postgres user when run as root: the server refuses root), with a
# self-signed certificate so that sslmode=require is tested, and prints its URL; `stop DIR` stops
# it and removes DIR. The server's output goes to files in DIR, never to this script's output,
# which a caller reads to its end. `pause DIR` and `resume DIR` stop and start the server on the same data and
# port, for tests of a database that goes away. Nothing else on the machine is touched: no system
# service is started.
set -euo pipefail

command=${1:?usage: test-postgres.sh start|stop|pause|resume DIR}
dir=${2:?usage: test-postgres.sh start|stop|pause|resume DIR}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "test-postgres.sh: PostgreSQL's server binaries are not installed (apt-get install postgresql)" >&2; exit 1; }
# The server outlives this script: it must not inherit the caller's descriptors (a pipe or a
# process monitor it holds open would keep the caller waiting for ever).
for fd in /proc/$$/fd/*; do
    fd=${fd##*/}
    [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
done
run=()
if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi

case "$command" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${run[@]}" "$pgbin/initdb" -D "$dir/data" -U moonhook --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    "${run[@]}" openssl req -new -x509 -days 2 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/data/server.key" -out "$dir/data/server.crt" >/dev/null 2>&1
    "${run[@]}" chmod 600 "$dir/data/server.key"
    "${run[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c ssl=on -c max_connections=400 -c shared_buffers=64MB" >"$dir/pg_ctl.log" 2>&1 \
        || { cat "$dir/pg_ctl.log" "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://moonhook@127.0.0.1:$port/postgres?sslmode=disable"
    ;;
pause)
    "${run[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    port=$(cat "$dir/port")
    "${run[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c ssl=on -c max_connections=400 -c shared_buffers=64MB" >"$dir/pg_ctl.log" 2>&1 \
        || { cat "$dir/pg_ctl.log" >&2; tail -n 20 "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    [ -d "$dir/data" ] && "${run[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: test-postgres.sh start|stop|pause|resume DIR" >&2
    exit 2
    ;;
esac
