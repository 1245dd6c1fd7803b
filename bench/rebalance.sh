#!/usr/bin/env bash
# Rebalancing a loaded cluster from three nodes to four.
#
#   bench/rebalance.sh [keys]        (default 1,000,000)
#
# What it does, all on 127.0.0.1 with ports picked at run time:
#
#  1. Builds the release binaries and starts a coordinator and three nodes
#     (data and logs in a temporary directory), then waits until the
#     coordinator's configuration is fair: 3 nodes, all 16384 slots owned,
#     each node 5461 or 5462 slots, no migrations in flight or queued.
#  2. Loads `keys` keys: `key:000000000000` ... (16 bytes, no hash tags, the
#     same names keycafe-benchmark -r uses), 64-byte values. Every key is
#     written exactly once, pipelined over RESP straight to the node that
#     owns its slot (one connection per node, in parallel). The DBSIZE sum
#     must equal `keys`.
#  3. Throughput before the move: keycafe-benchmark --cluster -t set,get
#     -r <keys> -d 64 -c 50 -P 1, run in short chunks (CHUNK_SECS, 0.5 s
#     for both tests) back to back for MEASURE_SECS (5) seconds. SETs only
#     overwrite loaded keys, so the key count does not change.
#  4. Starts a fourth node and, from that instant, polls the coordinator's
#     /api/cluster every 100 ms until its configuration is fair for 4 nodes
#     with nothing migrating or queued. That interval is the rebalance time.
#     Meanwhile the same benchmark chunks run back to back; the chunk running
#     when the move ends is allowed to finish.
#  5. Reports keys moved (DBSIZE of the new node), seconds, keys moved per
#     second, throughput before vs during the move, and checks that the
#     DBSIZE sum is unchanged. Prints markdown tables.
#
# Caveats (the first is repeated under the results):
#  - keycafe-benchmark reads CLUSTER SLOTS once per run and does not follow
#    MOVED/ASK redirects: during the move a chunk started under the old
#    layout gets error replies for the keys that moved. Those are counted
#    apart; "ok ops/s" counts only successful replies. Each new chunk starts
#    from the layout of the moment, as a client that refreshes would.
#  - The load generator shares the machine with the four nodes; run it on an
#    otherwise quiet machine, and compare before/during from the same run.
#
# Environment: MEASURE_SECS (5), CHUNK_SECS (0.5), CLIENTS (50),
# MOVE_TIMEOUT (300 s to wait for the rebalance), KEEP_WORK=1 keeps the
# temporary directory (it is always kept when the script fails), RUST_LOG
# (info) for the servers.
# Needs: cargo, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_fresh_cluster_secret

KEYS=${1:-1000000}
MEASURE_SECS=${MEASURE_SECS:-5}
CLIENTS=${CLIENTS:-50}
MOVE_TIMEOUT=${MOVE_TIMEOUT:-300}
CHUNK_SECS=${CHUNK_SECS:-0.5}
export RUST_LOG=${RUST_LOG:-info}
[[ $KEYS =~ ^[0-9]+$ && $KEYS -gt 0 ]] || { echo "usage: $0 [keys]" >&2; exit 2; }
require python3 curl

echo "== building (release)"
cargo build --release -q -p keycafe-server -p coordinate-server -p keycafe-client
BIN=target/release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keycafe-rebalance.XXXXXX")
PIDS=()
LOOP_PID=
POLL_PID=
BENCH_PID=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in $LOOP_PID $POLL_PID $BENCH_PID; do kill "$pid" 2>/dev/null || true; done
    stop_started # the nodes, then the coordinator
    for pid in $LOOP_PID $POLL_PID $BENCH_PID; do wait "$pid" 2>/dev/null || true; done
    keep_or_remove_work "$status" "logs and data"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r CO_PORT CO_HTTP N1 B1 N2 B2 N3 B3 N4 B4 < <(free_ports 10)
API="http://127.0.0.1:$CO_HTTP/api/cluster"

# ---------------------------------------------------------------- helpers

# Polls /api/cluster every 100 ms until the configuration is fair for N
# nodes with nothing migrating or queued. Prints the seconds from T0 (a
# `date +%s.%N` instant) to then, and on stderr the times of the first
# configuration with N nodes and of the first migration seen. T0 given as
# @FILE: the poller starts ahead (so its own start-up is not timed), touches
# FILE.ready once the API answers, then waits for FILE to hold T0.
cat >"$WORK/wait_fair.py" <<'PY'
import json, os, sys, time, urllib.request
url, nodes, t0, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
SLOTS = 16384
if t0.startswith("@"):
    path = t0[1:]
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if time.time() > deadline: sys.exit("the coordinator's API does not answer")
            time.sleep(0.05)
    open(path + ".ready", "w").close()
    while not (os.path.exists(path) and open(path).read().strip()):
        time.sleep(0.005)
    t0 = open(path).read()
t0 = float(t0)

def fair(doc):
    config = doc["config"]
    counts = {node["id"]: 0 for node in config["nodes"]}
    total = 0
    for r in config["slots"]:
        size = r["end"] - r["start"] + 1
        counts[r["owner"]] = counts.get(r["owner"], 0) + size
        total += size
    low, high = SLOTS // nodes, -(-SLOTS // nodes)
    return (len(config["nodes"]) == nodes and total == SLOTS
            and not config["migrations"] and not doc.get("migrations")
            and doc.get("queued_moves", 0) == 0
            and all(low <= n <= high for n in counts.values()))

joined = migrating = None
last = None
while True:
    now = time.time()
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            doc = json.load(response)
        last = doc
        n = len(doc["config"]["nodes"])
        if joined is None and n >= nodes:
            joined = now - t0
        if migrating is None and doc["config"]["migrations"]:
            migrating = now - t0
        if fair(doc):
            print(f"{now - t0:.3f}")
            extra = []
            if joined is not None: extra.append(f"node count reached {nodes} after {joined:.3f} s")
            if migrating is not None: extra.append(f"first migration seen after {migrating:.3f} s")
            if extra: print("   (" + "; ".join(extra) + f"; epoch {doc['config']['epoch']})", file=sys.stderr)
            sys.exit(0)
    except (OSError, ValueError, KeyError):
        pass
    if now - t0 > timeout:
        summary = last and {k: last[k] for k in ("epoch", "queued_moves", "slots_assigned") if k in last}
        print(f"not fair for {nodes} nodes after {timeout:.0f} s; last: {summary}", file=sys.stderr)
        if last:
            print(json.dumps(last.get("migrations"))[:2000], file=sys.stderr)
        sys.exit(1)
    time.sleep(max(0.0, 0.1 - (time.time() - now)))
PY

# Writes key:%012d (0 <= i < KEYS), 64-byte values, each straight to the
# owner of its slot per /api/cluster, pipelined, one connection per node in
# parallel; fails unless every reply is +OK.
cat >"$WORK/load.py" <<'PY'
import binascii, json, socket, sys, threading, time, urllib.request
url, keys = sys.argv[1], int(sys.argv[2])
config = json.load(urllib.request.urlopen(url, timeout=5))["config"]
assert not config["migrations"], "load while nothing migrates"
addr_of = {node["id"]: node["client_addr"] for node in config["nodes"]}
owner = [None] * 16384
for r in config["slots"]:
    owner[r["start"]:r["end"] + 1] = [addr_of[r["owner"]]] * (r["end"] - r["start"] + 1)
assert None not in owner, "every slot owned"

started = time.time()
value = b"v" * 64
bufs = {addr: bytearray() for addr in addr_of.values()}
counts = dict.fromkeys(bufs, 0)
for i in range(keys):
    key = b"key:%012d" % i                        # 16 bytes, no hash tag
    addr = owner[binascii.crc_hqx(key, 0) & 16383]
    bufs[addr] += b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$64\r\n" + value + b"\r\n"
    counts[addr] += 1

errors = []
def load(addr):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    want, got, bad = counts[addr], 0, b""
    def send():
        view = memoryview(bufs[addr])
        for start in range(0, len(view), 1 << 20):
            sock.sendall(view[start:start + (1 << 20)])
    sender = threading.Thread(target=send)
    sender.start()
    while got < want:
        chunk = sock.recv(1 << 20)
        if not chunk:
            errors.append(f"{addr}: connection closed after {got}/{want} replies")
            break
        got += chunk.count(b"\n")
        if b"-" in chunk and not bad:               # +OK never contains '-'
            bad = chunk[chunk.index(b"-"):][:200]
    sender.join()
    sock.close()
    if bad:
        errors.append(f"{addr}: error reply: {bad!r}")
threads = [threading.Thread(target=load, args=(addr,)) for addr in bufs if counts[addr]]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("load failed: " + "; ".join(errors))
print(f"{time.time() - started:.2f}")
PY

# Sums keycafe-benchmark --json documents (one file per chunk) per test.
cat >"$WORK/aggregate.py" <<'PY'
import json, sys
out, totals = sys.argv[1], {}
failed = 0
for path in sys.argv[2:]:
    try:
        doc = json.load(open(path))
    except (OSError, ValueError):
        failed += 1
        continue
    for t in doc["tests"]:
        a = totals.setdefault(t["name"], dict(requests=0, errors=0, seconds=0.0, p99=0.0, chunks=0, first_error=None))
        a["requests"] += t["requests"]
        a["errors"] += t["errors"]
        a["seconds"] += t["seconds"]
        a["p99"] = max(a["p99"], t["latency_ms"]["p99"])
        a["chunks"] += 1
        a["first_error"] = a["first_error"] or t.get("first_error")
json.dump(dict(tests=totals, failed_chunks=failed, chunks=len(sys.argv) - 2), open(out, "w"))
PY

start_node() {  # name port bus-port
    "$BIN/keycafe-server" --port "$2" --cluster-port "$3" --coordinator "127.0.0.1:$CO_PORT" \
        >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1" "$2" "$!"
}

dbsize() {      # port
    local n
    n=$("$BIN/keycafe-cli" -p "$1" DBSIZE)
    n=${n//[^0-9]/}
    echo "${n:-0}"
}

# One benchmark chunk into file $1 (JSON; the exit status is 1 when some
# replies were errors, which are counted, not fatal).
# Runs in the background and waits, so that a signal can stop it at once.
bench_chunk() {
    "$BIN/keycafe-benchmark" --cluster -h 127.0.0.1 -p "$N1" -t set,get -n "$CHUNK" \
        -r "$KEYS" -d 64 -c "$CLIENTS" -P 1 --json >"$1" 2>"$1.err" &
    BENCH_PID=$!
    wait "$BENCH_PID" || true
    BENCH_PID=
}

# --------------------------------------------------------------- the run

echo "== starting the coordinator and three nodes (work dir $WORK)"
"$BIN/coordinate-server" --port "$CO_PORT" --http-port "$CO_HTTP" --data-dir "$WORK/coordinator" \
    >"$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
wait_port coordinator "$CO_HTTP" "$!"
start_node node1 "$N1" "$B1"
start_node node2 "$N2" "$B2"
start_node node3 "$N3" "$B3"
python3 "$WORK/wait_fair.py" "$API" 3 "$(date +%s.%N)" 60 >/dev/null 2>&1 ||
    { echo "the three-node cluster did not become fair within 60 s" >&2; exit 1; }
echo "   fair: 3 nodes on ports $N1 $N2 $N3, coordinator $CO_PORT (dashboard $CO_HTTP)"

echo "== loading $KEYS keys (16-byte keys, 64-byte values)"
LOAD_SECS=$(python3 "$WORK/load.py" "$API" "$KEYS")
BEFORE=()
for port in "$N1" "$N2" "$N3"; do BEFORE+=("$(dbsize "$port")"); done
SUM_BEFORE=$((BEFORE[0] + BEFORE[1] + BEFORE[2]))
echo "   loaded in $LOAD_SECS s; DBSIZE ${BEFORE[*]} = $SUM_BEFORE"
[[ $SUM_BEFORE -eq $KEYS ]] || { echo "DBSIZE sum $SUM_BEFORE != $KEYS" >&2; exit 1; }

# Chunks of about CHUNK_SECS (set + get): a short calibration run sets the size.
CHUNK=20000
bench_chunk "$WORK/calibrate.json"
CHUNK=$(python3 -c '
import json, sys
tests = json.load(open(sys.argv[1]))["tests"]
rate = min(t["ops_per_sec"] for t in tests)
print(max(2000, int(rate * float(sys.argv[2]) / 2)))' "$WORK/calibrate.json" "$CHUNK_SECS") ||
    { echo "calibration run failed:" >&2; cat "$WORK/calibrate.json.err" >&2; exit 1; }

echo "== throughput before the move: ${MEASURE_SECS} s of set,get chunks (-n $CHUNK each, -c $CLIENTS -P 1)"
mkdir -p "$WORK/before" "$WORK/during"
i=0
end=$(($(date +%s%N) + MEASURE_SECS * 1000000000))
while [[ $(date +%s%N) -lt $end ]]; do
    i=$((i + 1)); bench_chunk "$WORK/before/$i.json"
done
python3 "$WORK/aggregate.py" "$WORK/before.json" "$WORK/before"/*.json

echo "== starting a fourth node; timing the rebalance"
python3 "$WORK/wait_fair.py" "$API" 4 "@$WORK/t0" "$MOVE_TIMEOUT" >"$WORK/move_secs" &
POLL_PID=$!
while [[ ! -e $WORK/t0.ready ]]; do
    kill -0 "$POLL_PID" 2>/dev/null || { echo "the /api/cluster poller failed" >&2; exit 1; }
    sleep 0.02
done
(
    trap 'kill $BENCH_PID 2>/dev/null; exit 0' TERM
    i=0
    while [[ ! -e $WORK/moved ]]; do
        i=$((i + 1)); bench_chunk "$WORK/during/$i.json"
    done
) &
LOOP_PID=$!
date +%s.%N >"$WORK/t0.tmp" && mv "$WORK/t0.tmp" "$WORK/t0"
start_node node4 "$N4" "$B4"
if ! wait "$POLL_PID"; then
    POLL_PID=
    echo "the rebalance did not finish within $MOVE_TIMEOUT s" >&2; exit 1
fi
POLL_PID=
MOVE_SECS=$(<"$WORK/move_secs")
touch "$WORK/moved"
wait "$LOOP_PID"
LOOP_PID=
python3 "$WORK/aggregate.py" "$WORK/during.json" "$WORK/during"/*.json

# The old owners drop moved keys as each slot completes; allow a moment for
# the counts to settle before checking them.
AFTER=() SUM_AFTER=0
for _ in $(seq 50); do
    AFTER=() SUM_AFTER=0
    for port in "$N1" "$N2" "$N3" "$N4"; do
        n=$(dbsize "$port"); AFTER+=("$n"); SUM_AFTER=$((SUM_AFTER + n))
    done
    [[ $SUM_AFTER -eq $SUM_BEFORE ]] && break
    sleep 0.1
done
echo "   DBSIZE after: ${AFTER[*]} = $SUM_AFTER"

python3 - "$WORK/before.json" "$WORK/during.json" "$KEYS" "$LOAD_SECS" "$MOVE_SECS" \
    "$SUM_BEFORE" "$SUM_AFTER" "${AFTER[3]}" "$CHUNK" "$CLIENTS" <<'PY'
import json, sys
before, during = (json.load(open(p)) for p in sys.argv[1:3])
keys, load_secs, move_secs = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
sum_before, sum_after, moved, chunk, clients = map(int, sys.argv[6:11])

print()
print(f"| rebalance 3 → 4 nodes, {keys:,} keys (16 B keys, 64 B values) | |")
print("|---|---|")
print(f"| keys loaded (DBSIZE sum) | {sum_before:,} in {load_secs:.2f} s ({sum_before / load_secs:,.0f} keys/s, pipelined RESP) |")
print(f"| keys moved to the new node (its DBSIZE) | {moved:,} ({moved / keys:.1%}; expected ≈ 25%) |")
print(f"| rebalance time (4th node start → fair config, no migrations) | {move_secs:.2f} s |")
print(f"| keys moved per second | {moved / move_secs:,.0f} |")
ok = "unchanged" if sum_after == sum_before else f"CHANGED by {sum_after - sum_before:+,}"
print(f"| DBSIZE sum after | {sum_after:,} ({ok}) |")
print()
print(f"keycafe-benchmark --cluster -t set,get -r {keys} -d 64 -c {clients} -P 1, chunks of -n {chunk}:")
print()
print("| test | before: ok ops/s | during: ok ops/s | during/before | before p99 ms (worst chunk) | during p99 ms (worst chunk) | error replies during (MOVED/ASK/TRYAGAIN) |")
print("|---|---|---|---|---|---|---|")
rates = {}
for name in before["tests"]:
    b, d = before["tests"][name], during["tests"].get(name)
    rb = (b["requests"] - b["errors"]) / b["seconds"]
    if not d or d["seconds"] == 0:
        print(f"| {name} | {rb:,.0f} | – | – | {b['p99']:.3f} | – | – |")
        continue
    rd = (d["requests"] - d["errors"]) / d["seconds"]
    rates[name] = (rb, rd)
    err = f"{d['errors']:,} of {d['requests']:,}"
    if d["first_error"]:
        err += f" (first: `{d['first_error'][:60]}`)"
    print(f"| {name} | {rb:,.0f} | {rd:,.0f} | {rd / rb:.2f} | {b['p99']:.3f} | {d['p99']:.3f} | {err} |")
if rates:
    rb = sum(b for b, _ in rates.values()) / len(rates)
    rd = sum(d for _, d in rates.values()) / len(rates)
    print(f"| mean of tests | {rb:,.0f} | {rd:,.0f} | {rd / rb:.2f} | | | |")
print()
print("ok ops/s counts successful replies only. keycafe-benchmark does not follow MOVED/ASK and reads")
print("CLUSTER SLOTS once per chunk, so during the move a chunk begun under the old layout gets error")
print("replies for moved keys (counted in the last column) until the next chunk picks up the new layout.")
for label, doc in (("before", before), ("during", during)):
    if doc["failed_chunks"]:
        print(f"\nwarning: {doc['failed_chunks']} of {doc['chunks']} benchmark chunks {label} the move produced no result (see *.err in the work dir)")
if any(t["errors"] for t in before["tests"].values()):
    print("\nwarning: error replies before the move; the cluster was not settled")
if sum_after != sum_before:
    sys.exit("DBSIZE sum changed across the move")
PY
