#!/usr/bin/env bash
# Keycafe vs redis-server on this machine, in the same run.
#
#   bench/compare.sh [rounds]      (default 3 rounds; medians are reported)
#   BASELINE=path/to/older/keycafe-server bench/compare.sh [rounds]
#                                  (also runs an older build, for before/after)
#
# Throughput and latency: redis-benchmark -t set,get -n 1000000 -r 100000
# -d 64 -c 50 at -P 1 and -P 16, against each server in turn, alternating:
# redis-server, keycafe-server with its default runtime (one thread per core)
# and keycafe-server --threads 1 (a single-threaded event loop, like Redis's).
# Memory: 1,000,000 keys (16-byte keys, 32-byte values) loaded into a fresh
# instance of each; resident memory growth per key.
# Both servers listen on loopback only and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ROUNDS=${1:-3}
REDIS_PORT=${REDIS_PORT:-7379}
KEYCAFE_PORT=${KEYCAFE_PORT:-7814}
KEYCAFE1_PORT=${KEYCAFE1_PORT:-7815}
REQUESTS=${REQUESTS:-1000000}
BASELINE=${BASELINE:-}
BASELINE_PORT=${BASELINE_PORT:-7816}

for tool in redis-server redis-benchmark redis-cli; do
    if ! command -v "$tool" >/dev/null; then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
        else
            echo "compare.sh needs redis-server and redis-tools: sudo apt-get install redis-server redis-tools" >&2
            exit 1
        fi
    fi
done
cargo build --release -q -p keycafe-server
KEYCAFE=target/release/keycafe-server
WORK=$(mktemp -d)
PIDS=()
trap kill_started_and_remove_work EXIT

start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --logfile "$WORK/redis.log" --dir "$WORK" &
    REDIS_PID=$!; PIDS+=("$REDIS_PID")
    wait_ping "$REDIS_PORT"
}
# start_node NAME BINARY PORT [FLAGS...]: starts a keycafe-server, sets STARTED_PID.
start_node() {
    local name=$1 binary=$2 port=$3; shift 3
    RUST_LOG=warn "$binary" --port "$port" "$@" >"$WORK/$name.log" 2>&1 &
    STARTED_PID=$!; PIDS+=("$STARTED_PID")
    wait_ping "$port"
}
start_keycafe() { start_node keycafe "$KEYCAFE" "$KEYCAFE_PORT"; KEYCAFE_PID=$STARTED_PID; }
start_keycafe1() { start_node keycafe1 "$KEYCAFE" "$KEYCAFE1_PORT" --threads 1; KEYCAFE1_PID=$STARTED_PID; }
start_baseline() { start_node baseline "$BASELINE" "$BASELINE_PORT"; BASELINE_PID=$STARTED_PID; }
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

echo "== throughput: redis-benchmark -t set,get -n $REQUESTS -r 100000 -d 64 -c 50 -P {1,16}, $ROUNDS rounds"
start_redis; start_keycafe; start_keycafe1
SERVERS=(redis keycafe keycafe-1t)
if [[ -n $BASELINE ]]; then start_baseline; SERVERS+=(baseline); fi
RESULTS="$WORK/results.csv"
for round in $(seq "$ROUNDS"); do
    for pipeline in 1 16; do
        for server in "${SERVERS[@]}"; do
            case $server in
                redis) port=$REDIS_PORT; pid=$REDIS_PID ;;
                keycafe) port=$KEYCAFE_PORT; pid=$KEYCAFE_PID ;;
                keycafe-1t) port=$KEYCAFE1_PORT; pid=$KEYCAFE1_PID ;;
                baseline) port=$BASELINE_PORT; pid=$BASELINE_PID ;;
            esac
            ticks_before=$(cpu_ticks "$pid")
            redis-benchmark -p "$port" -t set,get -n "$REQUESTS" -r 100000 -d 64 -c 50 \
                -P "$pipeline" --csv 2>/dev/null | tail -n +2 | tr -d '"' |
                while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
                    echo "$server,$pipeline,$test,$rps,$p50,$p99" >>"$RESULTS"
                    echo "  round $round  $server  -P $pipeline  $test  $rps ops/s  p50 $p50 ms  p99 $p99 ms"
                done
            # Server CPU per request (SET and GET together): steadier than
            # throughput on a shared machine, since it counts only the
            # server's own work.
            ticks=$(($(cpu_ticks "$pid") - ticks_before))
            echo "$server,$pipeline,$ticks,$TICKS_PER_SECOND,$((2 * REQUESTS))" >>"$WORK/cpu.csv"
        done
    done
done
stop "$REDIS_PID"; stop "$KEYCAFE_PID"; stop "$KEYCAFE1_PID"
if [[ -n $BASELINE ]]; then stop "$BASELINE_PID"; fi

echo "== memory: 1,000,000 keys, 16-byte keys, 32-byte values"
python3 - "$WORK/load.resp" <<'PY'
import sys
with open(sys.argv[1], "wb") as out:
    value = b"v" * 32
    for i in range(1_000_000):
        key = b"key:%012d" % i          # 16 bytes
        out.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$32\r\n" + value + b"\r\n")
PY
MEMORY="$WORK/memory.csv"
MEMORY_SERVERS=(redis keycafe)
if [[ -n $BASELINE ]]; then MEMORY_SERVERS+=(baseline); fi
for server in "${MEMORY_SERVERS[@]}"; do
    case $server in
        redis) start_redis; pid=$REDIS_PID; port=$REDIS_PORT ;;
        keycafe) start_keycafe; pid=$KEYCAFE_PID; port=$KEYCAFE_PORT ;;
        baseline) start_baseline; pid=$BASELINE_PID; port=$BASELINE_PORT ;;
    esac
    before=$(rss_kib "$pid")
    redis-cli -p "$port" --pipe <"$WORK/load.resp" >/dev/null
    keys=$(redis-cli -p "$port" DBSIZE)
    sleep 1
    after=$(rss_kib "$pid")
    echo "$server,$before,$after,$keys" >>"$MEMORY"
    echo "  $server: RSS ${before} KiB -> ${after} KiB for $keys keys"
    stop "$pid"
done

python3 - "$RESULTS" "$MEMORY" "$WORK/cpu.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
cells = {}
for server, pipeline, test, rps, p50, p99 in rows:
    cells.setdefault((test, pipeline, server), []).append((float(rps), float(p50), float(p99)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print()
print("| test | -P | redis ops/s | keycafe ops/s (ratio) | keycafe --threads 1 ops/s (ratio) | p50 / p99 ms: redis | keycafe | keycafe --threads 1 |")
print("|---|---|---|---|---|---|---|---|")
for test in ("SET", "GET"):
    for pipeline in ("1", "16"):
        r = cells.get((test, pipeline, "redis"))
        k = cells.get((test, pipeline, "keycafe"))
        k1 = cells.get((test, pipeline, "keycafe-1t"))
        if not (r and k and k1):
            continue
        print(f"| {test} | {pipeline} | {med(r,0):,.0f} | {med(k,0):,.0f} ({med(k,0)/med(r,0):.2f}x) "
              f"| {med(k1,0):,.0f} ({med(k1,0)/med(r,0):.2f}x) "
              f"| {med(r,1):.3f} / {med(r,2):.3f} | {med(k,1):.3f} / {med(k,2):.3f} | {med(k1,1):.3f} / {med(k1,2):.3f} |")
print()
if any(key[2] == "baseline" for key in cells):
    print("| test | -P | baseline ops/s (vs redis) | this build ops/s (vs redis) | this build / baseline |")
    print("|---|---|---|---|---|")
    for test in ("SET", "GET"):
        for pipeline in ("1", "16"):
            r, k, b = (cells.get((test, pipeline, s)) for s in ("redis", "keycafe", "baseline"))
            if r and k and b:
                print(f"| {test} | {pipeline} | {med(b,0):,.0f} ({med(b,0)/med(r,0):.2f}x) "
                      f"| {med(k,0):,.0f} ({med(k,0)/med(r,0):.2f}x) | {med(k,0)/med(b,0):.2f}x |")
    print()
cpu = {}
for server, pipeline, ticks, hz, requests in csv.reader(open(sys.argv[3])):
    cpu.setdefault((server, pipeline), []).append(int(ticks) / int(hz) * 1e6 / int(requests))
print("| server CPU per request (µs, median) | -P 1 | -P 16 |")
print("|---|---|---|")
for server in ("redis", "keycafe", "keycafe-1t", "baseline"):
    row = [f"{statistics.median(cpu[(server, p)]):.2f}" for p in ("1", "16") if (server, p) in cpu]
    if not row:
        continue
    print(f"| {server} | " + " | ".join(row) + " |")
print()
print("| server | keys | RSS growth | bytes per key |")
print("|---|---|---|---|")
per_key = {}
for server, before, after, keys in csv.reader(open(sys.argv[2])):
    growth = (int(after) - int(before)) * 1024
    per_key[server] = growth / int(keys)
    print(f"| {server} | {int(keys):,} | {growth / 2**20:.1f} MiB | {per_key[server]:.1f} |")
if "redis" in per_key and "keycafe" in per_key:
    print(f"\nkeycafe/redis memory per key: {per_key['keycafe'] / per_key['redis']:.2f}x")
if "baseline" in per_key and "keycafe" in per_key:
    print(f"this build/baseline memory per key: {per_key['keycafe'] / per_key['baseline']:.2f}x")
PY
