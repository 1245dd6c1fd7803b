#!/usr/bin/env bash
# Memory and eviction: Keycafe beside redis-server at the same maxmemory.
#
#   bench/eviction.sh [rounds]      (default 3 rounds; medians are reported)
#
# All on 127.0.0.1, ports picked at run time, logs in a temporary directory
# (kept when KEEP_WORK=1 or on failure).
#
#  1. Hit ratio and throughput while evicting. For each policy (allkeys-lru,
#     allkeys-lfu), each round starts a fresh redis-server and a fresh
#     keycafe-server, both with `maxmemory $MAXMEMORY`, and runs the same
#     cache workload against each (keycafe-server/examples/zipf_cache.rs):
#     GET a key drawn from a Zipf distribution ($KEYS keys, skew $SKEW,
#     values of 100-1000 bytes fixed per key), SET it on a miss, from
#     $CONNECTIONS connections pipelining $PIPELINE GETs. The first $WARMUP
#     GETs fill the cache; the next $OPS are measured: hit ratio, GETs +
#     SETs per second (every miss evicts, so this is throughput while
#     evicting) and the server's CPU time per operation (steadier than
#     throughput on a shared machine). Also recorded: keys held,
#     used_memory, RSS, evicted_keys.
#  2. The cost of the limit on the hot path. keycafe-server without
#     maxmemory (twice: the second, "control", shows how far two identical
#     nodes differ on this machine), and with `maxmemory 1gb` (set but never
#     reached), run
#     `redis-benchmark -t set,get -n $REQUESTS -r 100000 -d 64 -c 50 -P
#     {1,16}` in turn, each round starting with another, with server CPU
#     per request. Short runs, many rounds: on a shared machine throughput
#     drifts by more than the effect sought, so the report also gives the
#     median of each round's ratio, which compares runs made seconds apart. BASELINE=<an
#     older keycafe-server binary> adds it as a third target (before/after).
#
# PARTS=hits or PARTS=hot runs one part only.
#
# Environment: MAXMEMORY (64mb), KEYS (1000000), SKEW (0.99), WARMUP
# (1500000), OPS (1500000), CONNECTIONS (8), PIPELINE (16), REQUESTS
# (300000), HOT_ROUNDS (3 x rounds), THREADS (1: keycafe-server on one event
# loop, like redis-server; 0 for one worker per core), BASELINE (none).
# Needs: cargo, redis-server, redis-benchmark, redis-cli, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ROUNDS=${1:-3}
MAXMEMORY=${MAXMEMORY:-64mb}
KEYS=${KEYS:-1000000}
SKEW=${SKEW:-0.99}
WARMUP=${WARMUP:-1500000}
OPS=${OPS:-1500000}
CONNECTIONS=${CONNECTIONS:-8}
PIPELINE=${PIPELINE:-16}
REQUESTS=${REQUESTS:-300000}
THREADS=${THREADS:-1}
BASELINE=${BASELINE:-}
PARTS=${PARTS:-hits,hot}
HOT_ROUNDS=${HOT_ROUNDS:-$((ROUNDS * 3))}
require redis-server redis-benchmark redis-cli python3

echo "== building (release): keycafe-server and the zipf_cache client"
cargo build --release -q -p keycafe-server --bin keycafe-server --example zipf_cache
BIN=$PWD/target/release
WORK=$(mktemp -d /tmp/keycafe-eviction.XXXXXX)
PIDS=()
trap 'status=$?; stop_started; keep_or_remove_work $status "logs"' EXIT

# info PORT FIELD [SECTION]: one field of INFO.
info() { redis-cli -p "$1" INFO "${3:-all}" | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'; }
rss_bytes() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }

# start SERVER NAME [FLAGS...]: starts redis-server or keycafe-server on a
# fresh port; sets PORT and PID.
start() {
    local server=$1 name=$2
    shift 2
    PORT=$(free_ports 1)
    case $server in
        redis) redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
                   --dir "$WORK" "$@" >"$WORK/$name.log" 2>&1 & ;;
        keycafe) RUST_LOG=warn "$BIN/keycafe-server" --port "$PORT" --threads "$THREADS" "$@" \
                   >"$WORK/$name.log" 2>&1 & ;;
        baseline) RUST_LOG=warn "$BASELINE" --port "$PORT" --threads "$THREADS" "$@" \
                   >"$WORK/$name.log" 2>&1 & ;;
    esac
    PID=$!
    PIDS+=("$PID")
    wait_port "$name" "$PORT" "$PID"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

touch "$WORK/hits" "$WORK/hot" "$WORK/cpu"
if [[ $PARTS == *hits* ]]; then
echo "== hit ratio: $KEYS keys, skew $SKEW, maxmemory $MAXMEMORY, warm-up $WARMUP GETs, $OPS measured, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    for policy in allkeys-lru allkeys-lfu; do
        for server in redis keycafe; do
            start "$server" "$server-$policy-$round" --maxmemory "$MAXMEMORY" --maxmemory-policy "$policy"
            # The warm-up fills the cache; only the measured part is timed
            # and its server CPU counted.
            "$BIN/examples/zipf_cache" --addr "127.0.0.1:$PORT" --keys "$KEYS" --skew "$SKEW" --seed 1 \
                --warmup "$WARMUP" --ops 0 --connections "$CONNECTIONS" --pipeline "$PIPELINE" >/dev/null
            ticks=$(cpu_ticks "$PID")
            line=$("$BIN/examples/zipf_cache" --addr "127.0.0.1:$PORT" --keys "$KEYS" --skew "$SKEW" --seed 2 \
                --warmup 0 --ops "$OPS" --connections "$CONNECTIONS" --pipeline "$PIPELINE")
            ticks=$(($(cpu_ticks "$PID") - ticks))
            held=$(redis-cli -p "$PORT" DBSIZE)
            used=$(info "$PORT" used_memory memory)
            evicted=$(info "$PORT" evicted_keys stats)
            rss=$(rss_bytes "$PID")
            echo "$server $policy $line held=$held used_memory=$used evicted=$evicted rss=$rss" \
                "cpu_ticks=$ticks hz=$TICKS_PER_SECOND" >>"$WORK/hits"
            printf '  round %s  %-12s %-8s %s held=%s\n' "$round" "$policy" "$server" "$line" "$held"
            stop "$PID"
        done
    done
done
fi

if [[ $PARTS == *hot* ]]; then
echo "== hot path: redis-benchmark -t set,get -n $REQUESTS -r 100000 -d 64 -c 50 -P {1,16}, $HOT_ROUNDS rounds"
start keycafe unset
UNSET_PORT=$PORT UNSET_PID=$PID
# A second node without the limit: how far two identical nodes differ here.
start keycafe control
CONTROL_PORT=$PORT CONTROL_PID=$PID
start keycafe limit --maxmemory 1gb --maxmemory-policy allkeys-lru
LIMIT_PORT=$PORT LIMIT_PID=$PID
TARGETS=(unset control limit)
if [[ -n $BASELINE ]]; then
    start baseline baseline
    BASE_PORT=$PORT BASE_PID=$PID
    TARGETS+=(baseline)
fi
for round in $(seq "$HOT_ROUNDS"); do
    # Each round starts with a different target, so that none is always
    # measured right after the same neighbour.
    shift_by=$((round % ${#TARGETS[@]}))
    order=("${TARGETS[@]:shift_by}" "${TARGETS[@]:0:shift_by}")
    for pipeline in 1 16; do
        for target in "${order[@]}"; do
            case $target in
                unset) port=$UNSET_PORT pid=$UNSET_PID ;;
                control) port=$CONTROL_PORT pid=$CONTROL_PID ;;
                limit) port=$LIMIT_PORT pid=$LIMIT_PID ;;
                baseline) port=$BASE_PORT pid=$BASE_PID ;;
            esac
            ticks=$(cpu_ticks "$pid")
            redis-benchmark -p "$port" -t set,get -n "$REQUESTS" -r 100000 -d 64 -c 50 \
                -P "$pipeline" --csv 2>/dev/null | tail -n +2 | tr -d '"' |
                while IFS=, read -r test rps _rest; do
                    echo "$round $target $pipeline $test $rps" >>"$WORK/hot"
                    printf '  round %s  %-8s -P %-2s %-3s %12s ops/s\n' "$round" "$target" "$pipeline" "$test" "$rps"
                done
            echo "$target $pipeline $(($(cpu_ticks "$pid") - ticks)) $TICKS_PER_SECOND $((2 * REQUESTS))" >>"$WORK/cpu"
        done
    done
done
used=$(info "$LIMIT_PORT" used_memory memory)
echo "  the limited node held $used bytes of its 1gb at the end"
fi

python3 - "$WORK/hits" "$WORK/hot" "$WORK/cpu" <<'PY'
import collections, statistics, sys
med = statistics.median
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    server, policy, *pairs = line.split()
    runs[(policy, server)].append({k: float(v) for k, v in (p.split("=") for p in pairs)})
print()
if runs:
    print("| policy | server | hit ratio | ops/s while evicting | server CPU per op (µs) | keys held | used_memory | RSS | evicted keys |")
    print("|---|---|---|---|---|---|---|---|---|")
    for policy in ("allkeys-lru", "allkeys-lfu"):
        for server in ("redis", "keycafe"):
            r = runs[(policy, server)]
            if not r:
                continue
            m = lambda k: med(x[k] for x in r)
            cpu_per_op = med(x["cpu_ticks"] / x["hz"] * 1e6 / (x["hits"] + x["misses"] + x["sets"]) for x in r)
            print(f"| {policy} | {server} | {m('hit_ratio'):.4f} | {m('ops_per_sec'):,.0f} | {cpu_per_op:.2f} | {m('held'):,.0f} "
                  f"| {m('used_memory') / 2**20:.1f} MiB | {m('rss') / 2**20:.1f} MiB | {m('evicted'):,.0f} |")
    print()
    for policy in ("allkeys-lru", "allkeys-lfu"):
        r, k = runs[(policy, "redis")], runs[(policy, "keycafe")]
        if r and k:
            ratio = lambda key: med(x[key] for x in k) / med(x[key] for x in r)
            print(f"{policy}: keycafe/redis hit ratio {ratio('hit_ratio'):.3f}x, throughput {ratio('ops_per_sec'):.2f}x, "
                  f"keys held {ratio('held'):.2f}x")
hot = collections.defaultdict(list)
by_round = collections.defaultdict(dict)
for line in open(sys.argv[2]):
    round_, target, pipeline, test, rps = line.split()
    hot[(test, pipeline, target)].append(float(rps))
    by_round[(test, pipeline, round_)][target] = float(rps)
print()
targets = [t for t in ("unset", "control", "limit", "baseline") if any(key[2] == t for key in hot)]
if not targets:
    sys.exit(0)
def paired(test, pipeline, a, b):
    ratios = [r[a] / r[b] for (t, p, _), r in by_round.items() if (t, p) == (test, pipeline) and a in r and b in r]
    return med(ratios) if ratios else float("nan")
header = "| test | -P | " + " | ".join(f"{t} ops/s" for t in targets) + " | limit / unset | control / unset |"
if "baseline" in targets:
    header += " unset / baseline | limit / baseline |"
print("(ratios: the median over rounds of each round's ratio)")
print(header)
print("|---|---|" + "---|" * (len(targets) + 2 + 2 * ("baseline" in targets)))
for test in ("SET", "GET"):
    for pipeline in ("1", "16"):
        cells = [med(hot[(test, pipeline, t)]) for t in targets]
        row = f"| {test} | {pipeline} | " + " | ".join(f"{c:,.0f}" for c in cells)
        row += f" | {paired(test, pipeline, 'limit', 'unset'):.3f}x | {paired(test, pipeline, 'control', 'unset'):.3f}x |"
        if "baseline" in targets:
            row += f" {paired(test, pipeline, 'unset', 'baseline'):.3f}x | {paired(test, pipeline, 'limit', 'baseline'):.3f}x |"
        print(row)
cpu = collections.defaultdict(list)
for line in open(sys.argv[3]):
    target, pipeline, ticks, hz, requests = line.split()
    cpu[(target, pipeline)].append(int(ticks) / int(hz) * 1e6 / int(requests))
print()
print("| server CPU per request (µs, median) | -P 1 | -P 16 |")
print("|---|---|---|")
for target in targets:
    print(f"| {target} | " + " | ".join(f"{med(cpu[(target, p)]):.2f}" for p in ("1", "16")) + " |")
PY
