#!/usr/bin/env bash
# Client-side comparison, in the same run on this machine:
#   redis-benchmark   -> redis-server    (RESP)
#   keycafe-benchmark -> keycafe-server  (native protocol)
#   keycafe-benchmark -> keycafe-server  (RESP)
# each with -t set,get -c 50 -d 64 -r 100000, at -P 1 and -P 16, alternating,
# repeated; medians are reported.
#
#   bench/clients.sh [rounds]     (default 3; REQUESTS_P1 / REQUESTS_P16 to change -n)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ROUNDS=${1:-3}
REQUESTS_P1=${REQUESTS_P1:-300000}
REQUESTS_P16=${REQUESTS_P16:-1000000}
REDIS_PORT=${REDIS_PORT:-7379}
KEYCAFE_PORT=${KEYCAFE_PORT:-7814}

command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
    echo "clients.sh needs redis-server and redis-tools (apt-get install redis-server redis-tools)" >&2
    exit 1
}
cargo build --release -q -p keycafe-server -p keycafe-client
WORK=$(mktemp -d)
PIDS=()
trap kill_started_and_remove_work EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --logfile "$WORK/redis.log" &
PIDS+=($!)
RUST_LOG=warn target/release/keycafe-server --port "$KEYCAFE_PORT" >"$WORK/keycafe.log" 2>&1 &
PIDS+=($!)
for port in "$REDIS_PORT" "$KEYCAFE_PORT"; do
    for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

RESULTS="$WORK/results.csv"
# keycafe-benchmark --json → the same CSV rows as redis-benchmark's.
cat >"$WORK/json-to-csv.py" <<'PY'
import json, sys
label, pipeline = sys.argv[1], sys.argv[2]
for test in json.load(sys.stdin)["tests"]:
    latency = test["latency_ms"]
    name = test["name"].upper()
    print(f"{label},{pipeline},{name},{test['ops_per_sec']},{latency['p50']},{latency['p99']}")
PY
for round in $(seq "$ROUNDS"); do
    for pipeline in 1 16; do
        n=$REQUESTS_P1; [[ $pipeline == 16 ]] && n=$REQUESTS_P16
        common=(-c 50 -d 64 -r 100000 -P "$pipeline" -n "$n")
        redis-benchmark -p "$REDIS_PORT" -t set,get "${common[@]}" --csv 2>/dev/null | tail -n +2 | tr -d '"' |
            while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
                echo "redis-benchmark>redis,$pipeline,$test,$rps,$p50,$p99" | tee -a "$RESULTS"
            done
        for protocol in native resp; do
            target/release/keycafe-benchmark -p "$KEYCAFE_PORT" -t set,get "${common[@]}" \
                --protocol "$protocol" --json |
                python3 "$WORK/json-to-csv.py" "keycafe-benchmark>keycafe ($protocol)" "$pipeline" |
                tee -a "$RESULTS"
        done
    done
done

python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
cells = {}
for who, pipeline, test, rps, p50, p99 in csv.reader(open(sys.argv[1])):
    cells.setdefault((who, pipeline, test), []).append((float(rps), float(p50), float(p99)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
base = "redis-benchmark>redis"
print()
print("| client → server | -P | SET ops/s | GET ops/s | SET ratio | GET ratio | SET p50 / p99 ms | GET p50 / p99 ms |")
print("|---|---|---|---|---|---|---|---|")
for pipeline in ("1", "16"):
    for who in (base, "keycafe-benchmark>keycafe (native)", "keycafe-benchmark>keycafe (resp)"):
        s, g = cells.get((who, pipeline, "SET")), cells.get((who, pipeline, "GET"))
        bs, bg = cells.get((base, pipeline, "SET")), cells.get((base, pipeline, "GET"))
        if not (s and g and bs and bg):
            continue
        print(f"| {who.replace('>', ' → ')} | {pipeline} | {med(s,0):,.0f} | {med(g,0):,.0f} "
              f"| {med(s,0)/med(bs,0):.2f}x | {med(g,0)/med(bg,0):.2f}x "
              f"| {med(s,1):.3f} / {med(s,2):.3f} | {med(g,1):.3f} / {med(g,2):.3f} |")
PY
