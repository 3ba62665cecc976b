#!/usr/bin/env bash
# Multi-core echo on a server-bound load (issue 13): `tcp_echo server --threads T
# --work-us W` (each echo first burns W µs of hashing, so the client needs only a small
# share of a core), driven by `tcp_echo client`; 1 loop vs 2 loops, interleaved runs.
# Prints one line per run: threads, msgs/s, server CPU seconds, server CPU µs per message.
#
# Run on a quiet machine (the figures mean nothing on a shared one):
#   bash benches/runtime.sh
# Knobs (environment): THREADS="1 2" WORK_US=20 CONNS=32 COUNT=20000 SIZE=64 RUNS=3
#   ENGINE=uring|epoll PROFILE=release|debug CLIENT_CPU= (taskset the client, optional)
# Smoke test (seconds): PROFILE=debug COUNT=50 RUNS=1 bash benches/runtime.sh
# Not yet here: the acceptor hand-off variant and tokio multi-thread on the same load.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-"1 2"}
WORK_US=${WORK_US:-20}
CONNS=${CONNS:-32}
COUNT=${COUNT:-20000}
SIZE=${SIZE:-64}
RUNS=${RUNS:-3}
ENGINE=${ENGINE:-uring}
PROFILE=${PROFILE:-release}
CLIENT_CPU=${CLIENT_CPU:-}
TARGET=${CARGO_TARGET_DIR:-target}

if [ "$PROFILE" = release ]; then
    cargo build --quiet --release --example tcp_echo
else
    cargo build --quiet --example tcp_echo
fi
BIN="$TARGET/$PROFILE/examples/tcp_echo"
TICK=$(getconf CLK_TCK)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

# utime+stime of every thread of process $1, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for run in $(seq 1 "$RUNS"); do
    for t in $THREADS; do
        : >"$OUT"
        "$BIN" server 127.0.0.1:0 --threads "$t" --work-us "$WORK_US" --engine "$ENGINE" \
            >"$OUT" 2>/dev/null &
        pid=$!
        for _ in $(seq 1 500); do
            grep -q "listening on" "$OUT" && break
            sleep 0.01
        done
        addr=$(awk '/listening on/ {print $3; exit}' "$OUT")
        [ -n "$addr" ] || { echo "server did not start" >&2; kill "$pid"; exit 1; }
        before=$(cpu_ticks "$pid")
        client=("$BIN" client "$addr" --conns "$CONNS" --count "$COUNT" --size "$SIZE" --engine "$ENGINE")
        if [ -n "$CLIENT_CPU" ]; then client=(taskset -c "$CLIENT_CPU" "${client[@]}"); fi
        line=$("${client[@]}")
        after=$(cpu_ticks "$pid")
        kill -INT "$pid"
        wait "$pid"
        msgs=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' <<<"$line")
        rate=$(sed -n 's/.*msgs\/s=\([0-9]*\).*/\1/p' <<<"$line")
        awk -v t="$t" -v r="$run" -v rate="$rate" -v m="$msgs" -v d="$((after - before))" -v k="$TICK" \
            'BEGIN { cpu = d / k; printf "run=%s threads=%s msgs/s=%s server_cpu_s=%.2f cpu_us_per_msg=%.1f\n", r, t, rate, cpu, (m > 0 ? cpu * 1e6 / m : 0) }'
    done
done
