#!/usr/bin/env bash
# Replication: what a replica costs a primary, how far it lags, and how long
# a failover takes — beside redis-server doing the same.
#
#   bench/replication.sh [rounds]      (default 3 rounds of the throughput runs)
#
# All on 127.0.0.1, ports picked at run time, data and logs in a temporary
# directory (kept when KEEP_WORK=1 or on failure).
#
#  1. Throughput. Four targets run side by side, idle except while measured:
#     a Keycafe primary alone (its own coordinator), a Keycafe primary with
#     one replica (another coordinator), redis-server alone, and
#     redis-server with one replica (`--replicaof`). Each round runs
#     `redis-benchmark -t set -n $REQUESTS -c 50 -d 64 -r 100000 -P {1,16}`
#     against each target in turn; the report gives medians over rounds and
#     the with-replica / alone ratio for each server.
#  2. Lag. During every with-replica run a probe connection sends
#     `SET probe x` + `WAIT 1 1000` every 20 ms and times the pair: how long
#     until a write made under that load is on the replica (median, p99,
#     max). After the run: the time until the replica's offset equals the
#     primary's.
#  3. Failover. A Keycafe primary with one replica, coordinator node timeout
#     $NODE_TIMEOUT_MS. $KILLS times: `kill -9` the primary (FAULT=kill) or
#     freeze it with SIGSTOP (FAULT=stop), then time until `SET` on the
#     replica succeeds (it owns the slots: promotion done and adopted);
#     restart the killed node, or SIGCONT the frozen one (either rejoins as
#     a replica), and wait until it is in sync before the next fault.
#     Reports each time and the median.
#
# `bench/replication.sh 0` skips the throughput and lag rounds.
#
# BASELINE_BIN=<dir holding an older build's keycafe-server and
# coordinate-server> adds a fifth target, that build's primary alone with its
# own coordinator, measured in the same rounds: before/after figures for a
# change to the write path (the lease check, for instance).
#
# BIN=<dir> runs that build everywhere instead of building this tree.
#
# Environment: REQUESTS (200000), NODE_TIMEOUT_MS (5000, the default),
# KILLS (5), FAULT (kill), THREADS (0: keycafe-server's default, one worker per core) for
# the primaries, REPLICA_THREADS (1, as config4-6.yaml: a replica applies one
# stream) for the replica.
# Needs: cargo, redis-server, redis-benchmark, redis-cli, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_fresh_cluster_secret

ROUNDS=${1:-3}
REQUESTS=${REQUESTS:-200000}
NODE_TIMEOUT_MS=${NODE_TIMEOUT_MS:-5000}
KILLS=${KILLS:-5}
FAULT=${FAULT:-kill}
THREADS=${THREADS:-0}
REPLICA_THREADS=${REPLICA_THREADS:-1}
require redis-server redis-benchmark redis-cli python3

if [[ -z ${BIN:-} ]]; then
    echo "== building (release)"
    cargo build --release -q -p keycafe-server -p coordinate-server
    BIN=$PWD/target/release
fi
WORK=$(mktemp -d /tmp/keycafe-replication.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [[ ${KEEP_WORK:-0} == 1 || ${OK:-0} != 1 ]]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# A free client port whose bus port (+10000) is free too.
free_node_port() {
    python3 - <<'PY'
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    if port + 10000 > 65535: a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 10000)); print(port); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
PY
}
info() { redis-cli -p "$1" INFO "${3:-replication}" 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'; }
in_sync() { # in_sync PRIMARY REPLICA
    local p r
    p=$(info "$1" master_repl_offset) r=$(info "$2" slave_repl_offset)
    [[ -n $p && $p == "$r" && $(info "$2" master_link_status) == up ]]
}
serves() { [[ $(redis-cli -p "$1" SET bench:probe 1 2>/dev/null) == OK ]]; }
declare -A PID_OF # server pid by client port

start_coordinator() { # start_coordinator NAME [BINARY DIR] -> sets COORD
    local name=$1 bin=${2:-$BIN} port http
    port=$(free_ports 1) http=$(free_ports 1)
    "$bin/coordinate-server" --port "$port" --http-port "$http" --data-dir "$WORK/$name" \
        --node-timeout-ms "$NODE_TIMEOUT_MS" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    COORD=127.0.0.1:$port
    retry_for 10 "coordinator $name" listening "$port"
}
start_node() { # start_node NAME PORT COORD [extra flags...]; NODE_BIN overrides $BIN
    local name=$1 port=$2 coord=$3
    shift 3
    "${NODE_BIN:-$BIN}/keycafe-server" --port "$port" --coordinator "$coord" --threads "$THREADS" \
        --node-timeout-ms "$NODE_TIMEOUT_MS" "$@" >>"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    PID_OF[$port]=$!
}

echo "== starting the four targets"
start_coordinator coord-alone
KC_ALONE=$(free_node_port)
start_node kc-alone "$KC_ALONE" "$COORD"
retry_for 20 "keycafe alone serves" serves "$KC_ALONE"

if [[ -n ${BASELINE_BIN:-} ]]; then
    start_coordinator coord-base "$BASELINE_BIN"
    KC_BASE=$(free_node_port)
    NODE_BIN=$BASELINE_BIN start_node kc-base "$KC_BASE" "$COORD"
    retry_for 20 "baseline keycafe serves" serves "$KC_BASE"
fi

start_coordinator coord-pair
KC_PRIMARY=$(free_node_port)
start_node kc-primary "$KC_PRIMARY" "$COORD"
retry_for 20 "keycafe primary serves" serves "$KC_PRIMARY"
KC_REPLICA=$(free_node_port)
THREADS=$REPLICA_THREADS start_node kc-replica "$KC_REPLICA" "$COORD" --replica-of "127.0.0.1:$KC_PRIMARY"
retry_for 30 "keycafe replica in sync" in_sync "$KC_PRIMARY" "$KC_REPLICA"

RS_ALONE=$(free_ports 1) RS_PRIMARY=$(free_ports 1) RS_REPLICA=$(free_ports 1)
for port in "$RS_ALONE" "$RS_PRIMARY"; do
    redis-server --port "$port" --save '' --appendonly no --dir "$WORK" >"$WORK/redis-$port.log" 2>&1 &
    PIDS+=($!)
    PID_OF[$port]=$!
done
redis-server --port "$RS_REPLICA" --save '' --appendonly no --dir "$WORK" --replicaof 127.0.0.1 "$RS_PRIMARY" \
    >"$WORK/redis-$RS_REPLICA.log" 2>&1 &
PIDS+=($!)
PID_OF[$RS_REPLICA]=$!
retry_for 10 "redis alone" serves "$RS_ALONE"
retry_for 10 "redis primary" serves "$RS_PRIMARY"
retry_for 30 "redis replica in sync" in_sync "$RS_PRIMARY" "$RS_REPLICA"

# bench NAME PORT PIPELINE [REPLICA]: one redis-benchmark run; appends
# "name pipeline ops/s" to results, and lag samples when there is a replica.
bench() {
    local name=$1 port=$2 pipeline=$3 replica=${4:-} sampler=
    if [[ -n $replica ]]; then
        python3 - "$port" "$WORK/lag-$name-P$pipeline" <<'PY' &
import signal, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
samples = []
def stop(*_):
    with open(out, "a") as f:
        f.writelines(f"{ms:.3f}\n" for ms in samples)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
sock = socket.create_connection(("127.0.0.1", port))
reader = sock.makefile("rb")
while True:
    start = time.perf_counter()
    sock.sendall(b"SET bench:lagprobe x\r\nWAIT 1 1000\r\n")
    reader.readline(); reader.readline()
    samples.append((time.perf_counter() - start) * 1000)
    time.sleep(0.02)
PY
        sampler=$!
    fi
    local rps cpu_primary cpu_replica=0
    cpu_primary=$(cpu_ticks "${PID_OF[$port]}")
    [[ -n $replica ]] && cpu_replica=$(cpu_ticks "${PID_OF[$replica]}")
    rps=$(redis-benchmark -p "$port" -t set -n "$REQUESTS" -c 50 -d 64 -r 100000 -P "$pipeline" --csv 2>/dev/null |
        awk -F, 'NR == 2 {gsub(/"/, "", $2); print $2}')
    cpu_primary=$(( $(cpu_ticks "${PID_OF[$port]}") - cpu_primary ))
    [[ -n $replica ]] && cpu_replica=$(( $(cpu_ticks "${PID_OF[$replica]}") - cpu_replica ))
    echo "$name $pipeline $cpu_primary $cpu_replica" >>"$WORK/cpu"
    if [[ -n $sampler ]]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        local start=$(date +%s%N)
        retry_for 30 "$name replica catches up" in_sync "$port" "$replica"
        echo "$name $pipeline $(( ($(date +%s%N) - start) / 1000000 ))" >>"$WORK/catchup"
    fi
    echo "$name $pipeline $rps" >>"$WORK/results"
    printf '  %-16s -P %-3s %12s SET/s\n' "$name" "$pipeline" "$rps"
}

echo "== throughput: $ROUNDS rounds, $REQUESTS SETs per run"
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    for pipeline in 1 16; do
        bench keycafe-alone "$KC_ALONE" "$pipeline"
        if [[ -n ${BASELINE_BIN:-} ]]; then bench keycafe-baseline "$KC_BASE" "$pipeline"; fi
        bench keycafe+replica "$KC_PRIMARY" "$pipeline" "$KC_REPLICA"
        bench redis-alone "$RS_ALONE" "$pipeline"
        bench redis+replica "$RS_PRIMARY" "$pipeline" "$RS_REPLICA"
    done
done

echo "== failover: $KILLS faults ($FAULT), node timeout $NODE_TIMEOUT_MS ms"
# The pair's primary and replica trade places on every fault. A killed
# node is restarted without --replica-of: it takes its old entry in the
# configuration, which the failover made a replica; a frozen one resumes
# and learns the same from the coordinator.
PRIMARY=$KC_PRIMARY REPLICA=$KC_REPLICA
for fault in $(seq "$KILLS"); do
    case $FAULT in
        kill) kill -9 "${PID_OF[$PRIMARY]}" ;;
        stop) kill -STOP "${PID_OF[$PRIMARY]}" ;;
        *) echo "FAULT is kill or stop, not $FAULT" >&2; exit 1 ;;
    esac
    start=$(date +%s%N)
    retry_for 60 "replica on $REPLICA takes over" serves "$REPLICA"
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "failover $ms" >>"$WORK/failover"
    echo "  $FAULT $fault: slots served again after $ms ms"
    case $FAULT in
        kill) start_node "kc-$PRIMARY" "$PRIMARY" "$COORD" ;;
        stop) kill -CONT "${PID_OF[$PRIMARY]}" ;;
    esac
    retry_for 60 "the old primary rejoins as a replica" in_sync "$REPLICA" "$PRIMARY"
    read -r PRIMARY REPLICA <<<"$REPLICA $PRIMARY"
done

python3 - "$WORK" "$ROUNDS" "$REQUESTS" "$NODE_TIMEOUT_MS" "$FAULT" <<'PY'
import collections, os, statistics, sys
work, rounds, requests, timeout, fault = sys.argv[1:6]
def lines(name):
    path = f"{work}/{name}"
    return open(path).read().split("\n")[:-1] if os.path.exists(path) else []
runs = collections.defaultdict(list)
for line in lines("results"):
    name, p, rps = line.split()
    runs[(name, p)].append(float(rps))
if runs:
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\n### SET throughput, one replica vs none (median of {rounds} rounds, {requests} SETs each)\n")
    print("| server | pipeline | alone (SET/s) | with 1 replica (SET/s) | with / alone |")
    print("|---|---|---:|---:|---:|")
    for server in ("keycafe", "redis"):
        for p in ("1", "16"):
            a, r = med[(f"{server}-alone", p)], med[(f"{server}+replica", p)]
            print(f"| {server} | {p} | {a:,.0f} | {r:,.0f} | {r / a:.2f}x |")
    if ("keycafe-baseline", "1") in med:
        print(f"\n### This build vs the baseline build, primary alone (median of {rounds} rounds)\n")
        print("| pipeline | baseline (SET/s) | this build (SET/s) | this / baseline |")
        print("|---|---:|---:|---:|")
        for p in ("1", "16"):
            b, a = med[("keycafe-baseline", p)], med[("keycafe-alone", p)]
            print(f"| {p} | {b:,.0f} | {a:,.0f} | {a / b:.2f}x |")
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = collections.defaultdict(list)
    for line in lines("cpu"):
        name, p, primary, replica = line.split()
        cpu[(name, p)].append((int(primary), int(replica)))
    print(f"\n### Server CPU per SET (µs, user + system, median over rounds)\n")
    print("| server | pipeline | primary alone | primary with replica | its replica |")
    print("|---|---|---:|---:|---:|")
    per = lambda t: t / ticks * 1e6 / int(requests)
    for server in ("keycafe", "redis"):
        for p in ("1", "16"):
            alone = statistics.median(per(a) for a, _ in cpu[(f"{server}-alone", p)])
            prim = statistics.median(per(a) for a, _ in cpu[(f"{server}+replica", p)])
            repl = statistics.median(per(r) for _, r in cpu[(f"{server}+replica", p)])
            print(f"| {server} | {p} | {alone:.2f} | {prim:.2f} | {repl:.2f} |")
    for p in ("1", "16"):
        if ("keycafe-baseline", p) in cpu:
            base = statistics.median(per(a) for a, _ in cpu[("keycafe-baseline", p)])
            print(f"| keycafe, baseline build | {p} | {base:.2f} | | |")
    print("\n### Replication lag under that load: SET + WAIT 1 round trip of a probe every 20 ms\n")
    print("| server | pipeline | probes | median (ms) | p99 (ms) | max (ms) | catch-up after the run (median ms) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    catch = collections.defaultdict(list)
    for line in lines("catchup"):
        name, p, ms = line.split()
        catch[(name, p)].append(int(ms))
    for server in ("keycafe", "redis"):
        for p in ("1", "16"):
            try:
                lags = sorted(float(l) for l in open(f"{work}/lag-{server}+replica-P{p}"))
            except FileNotFoundError:
                continue
            if lags:
                p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
                print(f"| {server} | {p} | {len(lags)} | {statistics.median(lags):.2f} | {p99:.2f} | {lags[-1]:.2f} | {statistics.median(catch[(server + '+replica', p)]):.0f} |")
try:
    times = [int(l.split()[1]) for l in open(f"{work}/failover")]
except FileNotFoundError:
    times = []
if not times:
    sys.exit(0)
what = {"kill": "kill -9 of", "stop": "SIGSTOP of"}[fault]
print(f"\n### Failover time (node timeout {timeout} ms, {what} the primary to the first SET served by its replica)\n")
print("| faults | times (ms) | median (ms) |")
print("|---:|---|---:|")
print(f"| {len(times)} | {', '.join(map(str, times))} | {statistics.median(times):.0f} |")
PY
OK=1
