#!/usr/bin/env bash
# Instructions per request on a node's command path, counted by valgrind's
# callgrind: the same count on every run, however noisy the machine, so a
# change of a few percent is visible where throughput cannot show it.
#
#   bench/instructions.sh [binary...]   (default: a fresh release build)
#
# For each binary: a node with --threads 1 under callgrind, then
# redis-benchmark -t set,get -n 200000 -r 100000 -d 64 -c 50 -P 16 (or
# PIPELINE=1 ...) against
# it (400,000 requests), then the node is stopped. Prints the total
# instructions over the number of requests (start-up included, the same
# for every build) and the ten functions that cost most.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_annotate redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "instructions.sh needs $tool (apt-get install valgrind redis-tools)" >&2; exit 1; }
done
if [[ $# -eq 0 ]]; then
    cargo build --release -q -p keycafe-server
    set -- target/release/keycafe-server
fi
PORT=${PORT:-7830}
REQUESTS=400000
PIPELINE=${PIPELINE:-16}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for binary in "$@"; do
    PORT=$((PORT + 1))
    out="$WORK/callgrind.out"
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$binary" --port "$PORT" --threads 1 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
        sleep 0.3
    done
    redis-benchmark -p "$PORT" -t set,get -n $((REQUESTS / 2)) -r 100000 -d 64 -c 50 -P "$PIPELINE" -q >/dev/null
    kill -INT "$pid"
    wait "$pid" || true
    total=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "== $binary: $total instructions, $((total / REQUESTS)) per request"
    # awk, not head: it reads to the end, so no stage dies of a closed pipe.
    callgrind_annotate "$out" | grep -E '^ *[0-9,]+ \(' | grep -v TOTALS |
        sed -E 's/ \[[^]]*\]$//' | awk 'NR <= 10'
done
