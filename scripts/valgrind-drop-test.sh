#!/usr/bin/env bash
# Runs the dropped-in-flight-read tests (tests/driver.rs) under valgrind's memcheck; with
# arguments `<test file> <filter>`, that file's tests instead, e.g.
#   RINGLOOP_FAULTS_DROPS=600 scripts/valgrind-drop-test.sh faults_driver s01
# (fault scenarios 1 and 16 with a smaller count).
#
# What it shows: no invalid read/write, no use of freed or uninitialised memory in user
# space, and no definite leak, while futures holding io_uring buffers are dropped mid-flight
# and their orphaned buffers are freed on the CQE. Valgrind cannot see the kernel's own
# writes into user memory; the tests themselves check that an orphaned buffer is alive
# until its CQE (and what the kernel wrote into it).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

test_file=${1:-driver}
filter=${2:-dropped_in_flight}
bin=$(cargo test --release --test "$test_file" --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
            and msg["target"]["name"] == sys.argv[1]:
        print(msg["executable"])
' "$test_file")
[ -n "$bin" ] || { echo "could not find the $test_file test binary" >&2; exit 2; }
echo "test binary: $bin"
valgrind --version

RINGLOOP_UNDER_VALGRIND=1 valgrind \
    --tool=memcheck \
    --error-exitcode=99 \
    --leak-check=full \
    --errors-for-leak-kinds=definite \
    --track-origins=yes \
    "$bin" "$filter" --test-threads=1 --nocapture
echo "valgrind: clean (exit 0)"
