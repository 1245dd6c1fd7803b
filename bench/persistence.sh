#!/usr/bin/env bash
# Keycafe's persistence beside redis-server's, on this machine, in the same run.
#
#   bench/persistence.sh [rounds]     (default 3; medians are reported)
#
# 1. Writes with an append-only file: redis-benchmark -t set -n $REQUESTS
#    -r 100000 -d 64 -c 50 at -P 1 and -P 16, against redis-server
#    --appendonly yes and keycafe-server --appendonly yes, with
#    appendfsync everysec and always; throughput and server CPU per request.
# 2. A snapshot of 1,000,000 keys (16-byte keys, 32-byte values): how long
#    BGSAVE takes, the file's size, and the latency a client sees meanwhile
#    (redis-cli --latency during the save: the longest round trip, in ms).
# Every server listens on loopback only, in a fresh temporary directory, and
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ROUNDS=${1:-3}
REQUESTS=${REQUESTS:-200000}
REDIS_PORT=${REDIS_PORT:-7391}
KEYCAFE_PORT=${KEYCAFE_PORT:-7892}
for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "persistence.sh needs $tool (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p keycafe-server
KEYCAFE=target/release/keycafe-server
WORK=$(mktemp -d)
PIDS=()
trap kill_started_and_remove_work EXIT

# start SERVER FSYNC: starts it with an append-only file (FSYNC "off": none);
# sets PID and PORT.
start() {
    local server=$1 fsync=$2 dir="$WORK/$1-$2-$RANDOM"
    mkdir -p "$dir"
    case $server in
        redis)
            local aof=(--appendonly no)
            [[ $fsync != off ]] && aof=(--appendonly yes --appendfsync "$fsync")
            redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" "${aof[@]}" \
                --dir "$dir" --daemonize no --logfile "$dir/log" &
            PORT=$REDIS_PORT ;;
        keycafe)
            local aof=(--appendonly no)
            [[ $fsync != off ]] && aof=(--appendonly yes --appendfsync "$fsync")
            RUST_LOG=warn "$KEYCAFE" --port "$KEYCAFE_PORT" --dir "$dir" --save "" "${aof[@]}" \
                >"$dir/log" 2>&1 &
            PORT=$KEYCAFE_PORT ;;
    esac
    PID=$!; PIDS+=("$PID")
    wait_ping "$PORT"
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
TICKS=$(getconf CLK_TCK)
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "== writes with an append-only file: redis-benchmark -t set -n $REQUESTS -r 100000 -d 64 -c 50, $ROUNDS rounds"
RESULTS="$WORK/writes.csv"
for round in $(seq "$ROUNDS"); do
    for fsync in everysec always; do
        for pipeline in 1 16; do
            for server in redis keycafe; do
                start "$server" "$fsync"
                before=$(cpu_ticks "$PID")
                rps=$(redis-benchmark -p "$PORT" -t set -n "$REQUESTS" -r 100000 -d 64 -c 50 -P "$pipeline" --csv 2>/dev/null |
                    tail -n 1 | tr -d '"' | cut -d, -f2)
                ticks=$(($(cpu_ticks "$PID") - before))
                stop
                cpu_us=$(awk -v t="$ticks" -v hz="$TICKS" -v n="$REQUESTS" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
                echo "$fsync,$pipeline,$server,$rps,$cpu_us" >>"$RESULTS"
                echo "  round $round  appendfsync $fsync  -P $pipeline  $server  $rps ops/s  $cpu_us µs CPU/request"
            done
        done
    done
done
echo
echo "| appendfsync | -P | redis ops/s | keycafe ops/s (ratio) | CPU µs/request: redis | keycafe |"
echo "|---|---|---|---|---|---|"
for fsync in everysec always; do
    for pipeline in 1 16; do
        r=$(awk -F, -v f="$fsync" -v p="$pipeline" '$1==f && $2==p && $3=="redis" {print $4}' "$RESULTS" | median)
        k=$(awk -F, -v f="$fsync" -v p="$pipeline" '$1==f && $2==p && $3=="keycafe" {print $4}' "$RESULTS" | median)
        rc=$(awk -F, -v f="$fsync" -v p="$pipeline" '$1==f && $2==p && $3=="redis" {print $5}' "$RESULTS" | median)
        kc=$(awk -F, -v f="$fsync" -v p="$pipeline" '$1==f && $2==p && $3=="keycafe" {print $5}' "$RESULTS" | median)
        awk -v f="$fsync" -v p="$pipeline" -v r="$r" -v k="$k" -v rc="$rc" -v kc="$kc" \
            'BEGIN {printf "| %s | %s | %\047d | %\047d (%.2fx) | %s | %s |\n", f, p, r, k, k / r, rc, kc}'
    done
done

echo
echo "== snapshot of 1,000,000 keys (BGSAVE), with a client reading meanwhile"
python3 - "$WORK/load.resp" <<'PY'
import sys
with open(sys.argv[1], "wb") as out:
    value = b"v" * 32
    for i in range(1_000_000):
        key = b"key:%012d" % i
        out.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$32\r\n" + value + b"\r\n")
PY
SNAPSHOTS="$WORK/snapshots.csv"
for round in $(seq "$ROUNDS"); do
    for server in redis keycafe; do
        start "$server" off
        redis-cli -p "$PORT" --pipe <"$WORK/load.resp" >/dev/null
        redis-cli -p "$PORT" --latency --raw >"$WORK/latency" &
        reader=$!
        sleep 1
        started=$(date +%s.%N)
        redis-cli -p "$PORT" BGSAVE >/dev/null
        while redis-cli -p "$PORT" INFO persistence | grep -q 'rdb_bgsave_in_progress:1'; do sleep 0.01; done
        seconds=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
        kill -INT "$reader" 2>/dev/null || true
        wait "$reader" 2>/dev/null || true
        max_ms=$(awk '{print $2}' "$WORK/latency")
        file=$(find "$WORK" -newer "$WORK/load.resp" \( -name dump.rdb -o -name dump.kcs \) -printf '%T@ %s\n' | sort -n | tail -1 | cut -d' ' -f2)
        stop
        echo "$server,$seconds,$file,$max_ms" >>"$SNAPSHOTS"
        echo "  round $round  $server  BGSAVE ${seconds}s  ${file} bytes  longest round trip meanwhile ${max_ms} ms"
    done
done
echo
echo "| server | BGSAVE of 1M keys (s, median) | file (MB) | longest client round trip during it (ms, median) |"
echo "|---|---|---|---|"
for server in redis keycafe; do
    s=$(awk -F, -v x="$server" '$1==x {print $2}' "$SNAPSHOTS" | median)
    f=$(awk -F, -v x="$server" '$1==x {print $3}' "$SNAPSHOTS" | median)
    m=$(awk -F, -v x="$server" '$1==x {print $4}' "$SNAPSHOTS" | median)
    awk -v x="$server" -v s="$s" -v f="$f" -v m="$m" 'BEGIN {printf "| %s | %.2f | %.1f | %s |\n", x, s, f / 1e6, m}'
done
