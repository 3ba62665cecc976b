#!/usr/bin/env bash
# Whole-process echo comparison: ringloop's tcp_echo/udp_echo servers on the io_uring and
# epoll engines against a tokio current-thread server (examples/tokio_echo.rs), all driven
# by the neutral load generator ../shared/echo-load.
#
#   bash benches/compare.sh                 # every cell, 5 rounds of 2 s per server
#   SECS=3 ROUNDS=7 bash benches/compare.sh
#   CELLS="tcp1 tcp128p4" bash benches/compare.sh
#   CELLS=udp16 SERVERS="uring uring_before epoll epoll_before tokio" BEFORE_EX=/path/release/examples \
#       bash benches/compare.sh          # before/after a change, in the same rounds
#   CELLS="tcp128p4 tcp1" SERVERS="uring epoll raw_uring raw_epoll" bash benches/compare.sh
#       # against the hand-written baselines (benches/baselines/; TCP only; also
#       # raw_uring_skip and raw_uring_fixed, its --skip-success and --fixed-files variants)
#
# Per measurement a fresh server starts pinned to CPU $SERVER_CPU (default 1) and echo-load
# runs pinned to CPU $CLIENT_CPU (default 0) for $SECS seconds. The server's utime+stime
# (/proc/PID/stat) before and after gives server CPU µs per message. The servers are
# interleaved (uring epoll tokio uring epoll tokio ...) for $ROUNDS rounds; the tables give
# medians, and the ratios are medians of the per-round ratios (each round's servers ran
# back to back under the same machine load).
#
# Syscalls per message come from a separate pass (one measurement per server and cell,
# $SYSCALL_SECS seconds) under `perf stat -e raw_syscalls:sys_enter -p PID`, so the
# tracepoint's cost never lands in the CPU figures. SYSCALLS=0 skips it (or it is skipped
# when perf cannot count that event). ringloop's servers also print their driver counters
# at exit; "enters/msg" is io_uring_enter (or epoll_wait) calls per message from those.
#
# Output: markdown on stdout; raw per-measurement rows in $OUT_DIR/raw.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-2}
ROUNDS=${ROUNDS:-5}
SYSCALLS=${SYSCALLS:-1}
SYSCALL_SECS=${SYSCALL_SECS:-1}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
CELLS=${CELLS:-"tcp1 tcp128 tcp128p4 tcp128x4k udp16"}
SERVERS=${SERVERS:-"uring epoll tokio"}
# REPORT_ONLY=DIR re-prints the tables of an earlier run from its raw rows.
OUT_DIR=${REPORT_ONLY:-${OUT_DIR:-$(mktemp -d /tmp/ringloop-compare.XXXXXX)}}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
LOAD_TARGET=${LOAD_TARGET:-$TARGET/echo-load}
HZ=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"

log() { echo "$*" >&2; }

RAW=$OUT_DIR/raw.tsv
SYS=$OUT_DIR/syscalls.tsv

if [ -z "${REPORT_ONLY:-}" ]; then
    log "== building (release): tcp_echo, udp_echo, tokio_echo, raw_uring_echo, raw_epoll_echo, echo-load"
    cargo build --release --example tcp_echo --example udp_echo --example tokio_echo \
        --example raw_uring_echo --example raw_epoll_echo >&2
    cargo build --release --manifest-path ../shared/echo-load/Cargo.toml --target-dir "$LOAD_TARGET" >&2
fi
EX=$TARGET/release/examples
LOAD=$LOAD_TARGET/release/echo-load

# cell -> "proto conns size pipeline"
cell_args() {
    case $1 in
        tcp1) echo "tcp 1 64 1" ;;
        tcp128) echo "tcp 128 64 1" ;;
        tcp128p4) echo "tcp 128 64 4" ;;
        tcp128x4k) echo "tcp 128 4096 1" ;;
        udp16) echo "udp 16 64 1" ;;
        *) log "unknown cell $1"; exit 2 ;;
    esac
}

cell_label() {
    read -r proto conns size pipe <<<"$(cell_args "$1")"
    local l="${proto^^} $conns × $size B"
    if [ "$pipe" -gt 1 ]; then l="$l, pipeline $pipe"; fi
    if [ "$proto" = udp ]; then l="UDP $conns sockets × $size B"; fi
    echo "$l"
}

SERVER_PID=
SERVER_ADDR=
# start_server SERVER PROTO: starts it pinned, sets SERVER_PID and SERVER_ADDR.
start_server() {
    local server=$1 proto=$2 bin cmd
    if [ "$proto" = udp ]; then bin=$EX/udp_echo; else bin=$EX/tcp_echo; fi
    case $server in
        uring | epoll) cmd=("$bin" server 127.0.0.1:0 --engine "$server") ;;
        uring_before | epoll_before) # an engine built from another tree: BEFORE_EX=its examples dir
            cmd=("${BEFORE_EX:?set BEFORE_EX to the examples dir of the other build}/$(basename "$bin")" \
                server 127.0.0.1:0 --engine "${server%_before}") ;;
        raw_uring | raw_uring_skip | raw_uring_fixed | raw_epoll)
            # TCP only: the hand-written calibration baselines in benches/baselines/
            if [ "$proto" = udp ]; then log "$server is TCP only"; exit 2; fi
            case $server in
                raw_uring) cmd=("$EX/raw_uring_echo" server 127.0.0.1:0) ;;
                raw_uring_skip) cmd=("$EX/raw_uring_echo" server 127.0.0.1:0 --skip-success) ;;
                raw_uring_fixed) cmd=("$EX/raw_uring_echo" server 127.0.0.1:0 --fixed-files) ;;
                raw_epoll) cmd=("$EX/raw_epoll_echo" server 127.0.0.1:0) ;;
            esac
            ;;
        tokio)
            cmd=("$EX/tokio_echo" 127.0.0.1:0)
            if [ "$proto" = udp ]; then cmd=("$EX/tokio_echo" --udp 127.0.0.1:0); fi
            ;;
    esac
    : >"$OUT_DIR/server.out"
    : >"$OUT_DIR/server.err"
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$OUT_DIR/server.out" 2>"$OUT_DIR/server.err" &
    SERVER_PID=$!
    for _ in $(seq 500); do
        SERVER_ADDR=$(sed -n 's/^listening on //p' "$OUT_DIR/server.out")
        [ -n "$SERVER_ADDR" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.01
    done
    log "server $server ($proto) did not start:"
    cat "$OUT_DIR/server.err" >&2
    exit 1
}

# stop_server: SIGTERM, wait; sets ENTERS to the driver's enter count ("-" for tokio).
# (Not in a $(...) subshell: only this shell can wait for the server.)
ENTERS=-
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    ENTERS=$(sed -n 's/.*driver: enters=\([0-9]*\).*/\1/p' "$OUT_DIR/server.err")
    ENTERS=${ENTERS:--}
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run_load PROTO CONNS SIZE PIPE SECS: echo-load's JSON line.
run_load() {
    local proto=$1 conns=$2 size=$3 pipe=$4 secs=$5 extra=()
    if [ "$proto" = udp ]; then extra=(--udp); fi
    if [ "$pipe" -gt 1 ]; then extra+=(--pipeline "$pipe"); fi
    taskset -c "$CLIENT_CPU" "$LOAD" --addr "$SERVER_ADDR" --conns "$conns" --size "$size" \
        --secs "$secs" "${extra[@]}"
}

json() { jq -r ".$2" <<<"$1"; }

perf_ok=0
if [ "$SYSCALLS" = 1 ] && perf stat -e raw_syscalls:sys_enter -x, -- true >/dev/null 2>&1; then
    perf_ok=1
fi

if [ -z "${REPORT_ONLY:-}" ]; then
printf 'cell\tround\tserver\tmsgs\tmsgs_per_s\tp99_us\tcpu_us_per_msg\tenters_per_msg\terrors\tmismatches\tlost\n' >"$RAW"
: >"$SYS"

log "== machine: nproc $(nproc), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
log "== $ROUNDS rounds x ${SECS}s per server per cell; raw rows in $RAW"
start_time=$(date +%s)
for cell in $CELLS; do
    read -r proto conns size pipe <<<"$(cell_args "$cell")"
    for round in $(seq "$ROUNDS"); do
        for server in $SERVERS; do
            start_server "$server" "$proto"
            t0=$(cpu_ticks "$SERVER_PID")
            out=$(run_load "$proto" "$conns" "$size" "$pipe" "$SECS")
            t1=$(cpu_ticks "$SERVER_PID")
            stop_server
            msgs=$(json "$out" msgs)
            cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v m="$msgs" \
                'BEGIN { printf "%.3f", (m > 0 ? d * 1e6 / hz / m : 0) }')
            epm=-
            if [ "$ENTERS" != - ]; then epm=$(awk -v e="$ENTERS" -v m="$msgs" \
                'BEGIN { printf "%.3f", (m > 0 ? e / m : 0) }'); fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "$round" "$server" \
                "$msgs" "$(json "$out" msgs_per_s)" "$(json "$out" p99_us)" "$cpu" "$epm" \
                "$(json "$out" errors)" "$(json "$out" mismatches)" "$(json "$out" lost)" \
                | tee -a "$RAW" >&2
        done
    done
    if [ "$perf_ok" = 1 ]; then
        for server in $SERVERS; do
            start_server "$server" "$proto"
            perf stat -e raw_syscalls:sys_enter -x, -o "$OUT_DIR/perf.out" -p "$SERVER_PID" &
            perf_pid=$!
            sleep 0.2 # let perf attach
            out=$(run_load "$proto" "$conns" "$size" "$pipe" "$SYSCALL_SECS")
            kill -INT "$perf_pid"
            wait "$perf_pid" 2>/dev/null || true
            stop_server
            n=$(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$OUT_DIR/perf.out")
            spm=$(awk -v n="${n:-0}" -v m="$(json "$out" msgs)" \
                'BEGIN { printf "%.3f", (m > 0 ? n / m : 0) }')
            printf '%s\t%s\t%s\n' "$cell" "$server" "$spm" | tee -a "$SYS" >&2
        done
    fi
done
log "== done in $(($(date +%s) - start_time)) s; load now $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# median COL CELL SERVER: median of a raw.tsv column.
median() {
    awk -F'\t' -v c="$1" -v cell="$2" -v s="$3" 'NR > 1 && $1 == cell && $3 == s { print $c }' "$RAW" \
        | sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0 || v[1] == "-") { print "-"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio_median COL CELL A B: median over rounds of A's COL / B's COL.
ratio_median() {
    awk -F'\t' -v c="$1" -v cell="$2" -v a="$3" -v b="$4" '
        NR > 1 && $1 == cell && $3 == a { x[$2] = $c }
        NR > 1 && $1 == cell && $3 == b { y[$2] = $c }
        END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$RAW" \
        | sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.2f\n", m }'
}

syscalls() {
    awk -F'\t' -v cell="$1" -v s="$2" '$1 == cell && $2 == s { print $3 }' "$SYS" | tail -1
}

sum_col() {
    awk -F'\t' -v c="$1" -v cell="$2" -v s="$3" 'NR > 1 && $1 == cell && $3 == s { t += $c } END { print t + 0 }' "$RAW"
}

echo
echo "Medians of $ROUNDS interleaved rounds × ${SECS} s; server on CPU $SERVER_CPU, echo-load on CPU $CLIENT_CPU."
echo
echo "| cell | server | msgs/s | p99 µs | server CPU µs/msg | syscalls/msg | enters/msg | errors/mismatches/lost |"
echo "|---|---|---:|---:|---:|---:|---:|---|"
for cell in $CELLS; do
    for server in $SERVERS; do
        printf '| %s | %s | %.0f | %s | %s | %s | %s | %s/%s/%s |\n' "$(cell_label "$cell")" "$server" \
            "$(median 5 "$cell" "$server")" "$(median 6 "$cell" "$server")" \
            "$(median 7 "$cell" "$server")" "$(syscalls "$cell" "$server")" \
            "$(median 8 "$cell" "$server")" "$(sum_col 9 "$cell" "$server")" \
            "$(sum_col 10 "$cell" "$server")" "$(sum_col 11 "$cell" "$server")"
    done
done
echo
echo "Ratios (median of per-round ratios; CPU/msg and p99 < 1 and msgs/s > 1 favour ringloop's uring engine):"
echo
echo "| cell | CPU/msg uring/epoll | msgs/s uring/epoll | p99 uring/epoll | CPU/msg uring/tokio | msgs/s uring/tokio |"
echo "|---|---:|---:|---:|---:|---:|"
for cell in $CELLS; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "$(cell_label "$cell")" \
        "$(ratio_median 7 "$cell" uring epoll)" "$(ratio_median 5 "$cell" uring epoll)" \
        "$(ratio_median 6 "$cell" uring epoll)" "$(ratio_median 7 "$cell" uring tokio)" \
        "$(ratio_median 5 "$cell" uring tokio)"
done

# has_server NAME: whether NAME is in $SERVERS.
has_server() { [[ " $SERVERS " == *" $1 "* ]]; }

if has_server raw_uring && has_server raw_epoll; then
    echo
    echo "Against the hand-written baselines (CPU/msg, median of per-round ratios; raw_uring*/raw_epoll < 1 means the raw io_uring server is cheaper than the raw epoll one):"
    echo
    cols=() hdr="| cell |" sep="|---|"
    for pair in raw_uring/raw_epoll raw_uring_skip/raw_epoll raw_uring_fixed/raw_epoll \
        uring/raw_uring uring/raw_uring_fixed epoll/raw_epoll; do
        if has_server "${pair%/*}" && has_server "${pair#*/}"; then
            cols+=("$pair") hdr="$hdr $pair |" sep="$sep---:|"
        fi
    done
    echo "$hdr"
    echo "$sep"
    for cell in $CELLS; do
        line="| $(cell_label "$cell") |"
        for pair in "${cols[@]}"; do
            line="$line $(ratio_median 7 "$cell" "${pair%/*}" "${pair#*/}") |"
        done
        echo "$line"
    done
fi
