#!/usr/bin/env bash
# HTTP servers under wrk: ringloop's http_hello (hyper) on the io_uring and epoll engines,
# http_protocol (asyncio-style Protocol + httparse) with pipelined requests, and hyper on
# tokio's current-thread runtime (benches/baselines/tokio_hyper_hello.rs) as the peer.
#
#   bash benches/http.sh                          # 5 rounds of 3 s per server, 64 connections
#   SECS=5 ROUNDS=7 CONNS=128 bash benches/http.sh
#   SERVERS="hello_uring tokio" bash benches/http.sh
#
# Servers: hello_uring hello_epoll tokio (plain keep-alive GETs), proto_uring proto_epoll
# tokio_pipe (16 requests pipelined per write, from a wrk Lua script written to a temp
# file). Per measurement a fresh server starts pinned to CPU $SERVER_CPU (default 1) and
# wrk (one thread) runs pinned to CPU $CLIENT_CPU (default 0). The server's utime+stime
# from /proc before and after gives its CPU µs per request. Servers are interleaved for
# $ROUNDS rounds; the table gives medians, and the ratios (to tokio, or tokio_pipe for the
# pipelined servers) are medians of per-round ratios. Needs `wrk` (Debian: apt-get install wrk).
#
# Output: markdown on stdout; raw rows in $OUT_DIR/raw.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-3}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-16}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVERS=${SERVERS:-"hello_uring hello_epoll tokio proto_uring proto_epoll tokio_pipe"}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/ringloop-http.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
HZ=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"
log() { echo "$*" >&2; }

command -v wrk >/dev/null || { log "wrk is missing: apt-get install -y wrk"; exit 2; }
log "== building (release, feature hyper): http_hello, http_protocol, tokio_hyper_hello"
cargo build --release --features hyper --example http_hello --example http_protocol \
    --example tokio_hyper_hello >&2
EX=$TARGET/release/examples

PIPE_LUA=$OUT_DIR/pipeline.lua
cat >"$PIPE_LUA" <<EOF
-- $DEPTH GETs in one write; wrk counts each response.
init = function(args)
    local r = {}
    for i = 1, $DEPTH do r[i] = wrk.format("GET", "/") end
    req = table.concat(r)
end
request = function() return req end
EOF

SERVER_PID=
SERVER_ADDR=
start_server() {
    local cmd
    case $1 in
        hello_uring) cmd=("$EX/http_hello" server 127.0.0.1:0 --engine uring) ;;
        hello_epoll) cmd=("$EX/http_hello" server 127.0.0.1:0 --engine epoll) ;;
        proto_uring) cmd=("$EX/http_protocol" server 127.0.0.1:0 --engine uring) ;;
        proto_epoll) cmd=("$EX/http_protocol" server 127.0.0.1:0 --engine epoll) ;;
        tokio | tokio_pipe) cmd=("$EX/tokio_hyper_hello" 127.0.0.1:0) ;;
        *) log "unknown server $1"; exit 2 ;;
    esac
    : >"$OUT_DIR/server.out"
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$OUT_DIR/server.out" 2>"$OUT_DIR/server.err" &
    SERVER_PID=$!
    for _ in $(seq 500); do
        SERVER_ADDR=$(sed -n 's/^listening on //p' "$OUT_DIR/server.out")
        [ -n "$SERVER_ADDR" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.01
    done
    log "server $1 did not start:"; cat "$OUT_DIR/server.err" >&2; exit 1
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure SERVER: one row "server round requests cpu_us_per_req req_per_s".
measure() {
    local server=$1 round=$2 extra=() t0 t1 out reqs
    case $server in proto_* | tokio_pipe) extra=(-s "$PIPE_LUA") ;; esac
    start_server "$server"
    # A short warm-up, then the measured run.
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d1s "http://$SERVER_ADDR/" "${extra[@]}" >/dev/null
    t0=$(cpu_ticks "$SERVER_PID")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$SERVER_ADDR/" "${extra[@]}")
    t1=$(cpu_ticks "$SERVER_PID")
    stop_server
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        log "$server: wrk saw errors:"; log "$out"; exit 1
    fi
    awk -v s="$server" -v r="$round" -v n="$reqs" -v dt="$((t1 - t0))" -v hz="$HZ" -v secs="$SECS" \
        'BEGIN { printf "%s\t%s\t%d\t%.3f\t%.0f\n", s, r, n, dt * 1e6 / hz / n, n / secs }'
}

RAW=$OUT_DIR/raw.tsv
: >"$RAW"
for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
        log "round $round: $server"
        measure "$server" "$round" >>"$RAW"
    done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
peer_of() { case $1 in proto_* | tokio_pipe) echo tokio_pipe ;; *) echo tokio ;; esac; }

echo "wrk -t1 -c$CONNS, ${SECS}s × $ROUNDS rounds, server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | requests/s (median) | server CPU µs/request (median) | CPU/request ÷ peer (median of rounds) |"
echo "|---|---|---|---|"
for server in $SERVERS; do
    rps=$(awk -v s="$server" '$1 == s { print $5 }' "$RAW" | median)
    cpu=$(awk -v s="$server" '$1 == s { print $4 }' "$RAW" | median)
    peer=$(peer_of "$server")
    ratio=-
    if grep -q "^$peer	" "$RAW" && [ "$server" != "$peer" ]; then
        ratio=$(awk -v s="$server" -v p="$peer" '
            $1 == s { a[$2] = $4 } $1 == p { b[$2] = $4 }
            END { for (r in a) if (r in b) print a[r] / b[r] }' "$RAW" | median)
        ratio=$(printf "%.2f" "$ratio")
    fi
    printf "| %s | %.0f | %.2f | %s |\n" "$server" "$rps" "$cpu" "$ratio"
done
log "raw rows: $RAW"
