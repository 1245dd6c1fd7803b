#!/usr/bin/env bash
# Transactions and RESP3: Keycafe beside redis-server, in the same run.
#
#   bench/transactions.sh [rounds]      (default 3 rounds; medians are reported)
#
# All on 127.0.0.1, ports picked at run time, logs in a temporary directory
# (kept when KEEP_WORK=1 or on failure). Each round runs every target in
# turn — redis-server, keycafe-server with one worker per core, and
# keycafe-server --threads 1 — against:
#
#  1. MULTI/EXEC: $TRANSACTIONS transactions of `MULTI; INCR {k:N}:a;
#     INCR {k:N}:b; EXEC` from $CONNECTIONS connections, one transaction in
#     flight per connection and then 16 (keycafe-server/examples/multi_exec.rs,
#     since redis-benchmark has no transaction test);
#  2. RESP3: `redis-benchmark -3 -t set,get -n $REQUESTS -r 100000 -d 64
#     -c 50 -P {1,16}`, and the same without -3 (RESP2), side by side.
#
# Server CPU per operation is recorded beside throughput: on a shared
# machine it is the steadier figure.
#
# Environment: TRANSACTIONS (200000), CONNECTIONS (50), REQUESTS (300000).
# Needs: cargo, redis-server, redis-benchmark, redis-cli, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ROUNDS=${1:-3}
TRANSACTIONS=${TRANSACTIONS:-200000}
CONNECTIONS=${CONNECTIONS:-50}
REQUESTS=${REQUESTS:-300000}
require redis-server redis-benchmark redis-cli python3

echo "== building (release): keycafe-server and the multi_exec client"
cargo build --release -q -p keycafe-server --bin keycafe-server --example multi_exec
BIN=$PWD/target/release
WORK=$(mktemp -d /tmp/keycafe-transactions.XXXXXX)
PIDS=()
trap 'status=$?; stop_started; keep_or_remove_work $status "logs"' EXIT


# start NAME: starts one target on a fresh port; sets PORT and PID.
start() {
    PORT=$(free_ports 1)
    case $1 in
        redis) redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
                   --dir "$WORK" >"$WORK/$1.log" 2>&1 & ;;
        keycafe) RUST_LOG=warn "$BIN/keycafe-server" --port "$PORT" >"$WORK/$1.log" 2>&1 & ;;
        keycafe-1t) RUST_LOG=warn "$BIN/keycafe-server" --port "$PORT" --threads 1 \
                   >"$WORK/$1.log" 2>&1 & ;;
    esac
    PID=$!
    PIDS+=("$PID")
    wait_port "$1" "$PORT" "$PID"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

RESULTS="$WORK/results"
touch "$RESULTS"
for round in $(seq "$ROUNDS"); do
    for target in redis keycafe keycafe-1t; do
        start "$target"
        for pipeline in 1 16; do
            ticks=$(cpu_ticks "$PID")
            line=$("$BIN/examples/multi_exec" --addr "127.0.0.1:$PORT" --transactions "$TRANSACTIONS" \
                --connections "$CONNECTIONS" --pipeline "$pipeline")
            ticks=$(($(cpu_ticks "$PID") - ticks))
            rate=$(sed -E 's/.*transactions_per_second=([0-9]+).*/\1/' <<<"$line")
            echo "$target multi P$pipeline $rate $ticks $TRANSACTIONS" >>"$RESULTS"
            printf '  round %s  %-10s MULTI/EXEC -P %-2s %s transactions/s\n' "$round" "$target" "$pipeline" "$rate"
            for protocol in 2 3; do
                flag=""; [[ $protocol == 3 ]] && flag="-3"
                ticks=$(cpu_ticks "$PID")
                redis-benchmark -p "$PORT" $flag -t set,get -n "$REQUESTS" -r 100000 -d 64 -c 50 \
                    -P "$pipeline" --csv 2>/dev/null | tail -n +2 | tr -d '"' |
                    while IFS=, read -r test rps _rest; do
                        echo "$target resp$protocol-$test P$pipeline $rps - -" >>"$RESULTS"
                        printf '  round %s  %-10s RESP%s %-3s -P %-2s %s ops/s\n' "$round" "$target" "$protocol" "$test" "$pipeline" "$rps"
                    done
                ticks=$(($(cpu_ticks "$PID") - ticks))
                echo "$target cpu-resp$protocol P$pipeline - $ticks $((2 * REQUESTS))" >>"$RESULTS"
            done
        done
        stop "$PID"
    done
done

python3 - "$RESULTS" "$TICKS_PER_SECOND" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
hz = int(sys.argv[2])
rate, cpu = {}, {}
for target, test, pipeline, value, ticks, ops in rows:
    if value != "-":
        rate.setdefault((test, pipeline, target), []).append(float(value))
    if ticks != "-":
        kind = "multi" if test == "multi" else test.removeprefix("cpu-")
        cpu.setdefault((kind, pipeline, target), []).append(int(ticks) / hz * 1e6 / int(ops))
med = statistics.median
targets = ("redis", "keycafe", "keycafe-1t")
print()
print("| test | -P | redis | keycafe (ratio) | keycafe --threads 1 (ratio) |")
print("|---|---|---|---|---|")
for test in ("multi", "resp2-SET", "resp3-SET", "resp2-GET", "resp3-GET"):
    for pipeline in ("P1", "P16"):
        r, k, k1 = (rate.get((test, pipeline, t)) for t in targets)
        if r and k and k1:
            unit = "transactions/s" if test == "multi" else "ops/s"
            print(f"| {test} ({unit}) | {pipeline[1:]} | {med(r):,.0f} | {med(k):,.0f} ({med(k)/med(r):.2f}x) "
                  f"| {med(k1):,.0f} ({med(k1)/med(r):.2f}x) |")
print()
print("| server CPU per operation (µs, median) | -P | redis | keycafe | keycafe --threads 1 |")
print("|---|---|---|---|---|")
for kind, what in (("multi", "per transaction"), ("resp2", "per SET/GET, RESP2"), ("resp3", "per SET/GET, RESP3")):
    for pipeline in ("P1", "P16"):
        cells = [cpu.get((kind, pipeline, t)) for t in targets]
        if all(cells):
            print(f"| {what} | {pipeline[1:]} | " + " | ".join(f"{med(c):.2f}" for c in cells) + " |")
PY
