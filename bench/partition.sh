#!/usr/bin/env bash
# A primary cut off by a network partition while its clients still reach
# it: how long until its replica serves the slots, and whether the two ever
# both acknowledged writes.
#
#   sudo bench/partition.sh [cuts]          (default 5)
#   BIN=<dir holding another build's keycafe-server and coordinate-server>
#                                           (measures that build instead)
#
# Each process runs in its own network namespace with its own address on a
# bridge (10.78.0.0/24) in a hub namespace, which this script creates and
# removes on exit; the host's own network is not touched. The writers run
# in the hub: one sends `SET` to the primary P and one to its replica R,
# each as fast as answers come (an answer waits at most 300 ms), and they
# record when each `OK` arrived. A cut is `iptables -j DROP` inside P's
# namespace for everything from and to the coordinator and R; the writers
# still reach P. The report, per cut:
#
# - failover: from the cut to the first write R acknowledged;
# - P's last OK: from the cut to the last write P acknowledged;
# - overlap: P's last OK minus R's first OK. Negative is a gap: no moment at
#   which both said OK. Positive is the window in which both did.
#
# After each cut the partition heals; the old primary must come back as a
# replica of the new one and catch up (offsets equal) before the next cut,
# which then hits the new primary.
#
# Environment: NODE_TIMEOUT_MS (2000), CUT_SECONDS (6). Needs root, ip
# (iproute2), iptables, python3, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_fresh_cluster_secret

CUTS=${1:-5}
NODE_TIMEOUT_MS=${NODE_TIMEOUT_MS:-2000}
CUT_SECONDS=${CUT_SECONDS:-6}
require ip iptables python3 redis-cli
if [[ $(id -u) -ne 0 ]]; then
    echo "partition.sh makes network namespaces: run it as root" >&2
    exit 1
fi
if [[ -z ${BIN:-} ]]; then
    cargo build --release -q -p keycafe-server -p coordinate-server
    BIN=$PWD/target/release
fi
WORK=$(mktemp -d /tmp/keycafe-partition.XXXXXX)
NS=kcb$$
HUB=$NS-hub
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for ns in $(ip netns list | awk -v p="$NS-" 'index($1, p) == 1 {print $1}'); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ ${OK:-0} == 1 ]]; then rm -rf "$WORK"; else echo "logs kept in $WORK"; fi
}
trap cleanup EXIT

# The hub: a bridge at 10.78.0.1. Each host: a namespace with one veth end
# on the bridge, at 10.78.0.$2.
ip netns add "$HUB"
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" addr add 10.78.0.1/24 dev br0
ip -n "$HUB" link set br0 up
host() { # host NAME LAST_OCTET
    local ns=$NS-$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$HUB" link add "v-$1" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "v-$1" master br0 up
    ip -n "$ns" addr add "10.78.0.$2/24" dev eth0
    ip -n "$ns" link set eth0 up
}
host coord 2
host a 11
host b 12
in_ns() { local ns=$NS-$1; shift; ip netns exec "$ns" "$@"; }
cli() { ip netns exec "$HUB" redis-cli -h "$1" -p 7000 "${@:2}" 2>/dev/null | tr -d '\r'; }
info() { cli "$1" INFO replication | awk -F: -v f="$2" '$1 == f {print $2}'; }
serves() { [[ $(cli "$1" SET bench:probe 1) == OK ]]; }
in_sync() { # in_sync PRIMARY REPLICA
    local p r
    p=$(info "$1" master_repl_offset) r=$(info "$2" slave_repl_offset)
    [[ -n $p && $p == "$r" && $(info "$2" master_link_status) == up ]]
}

in_ns coord "$BIN/coordinate-server" --bind 10.78.0.2 --port 9800 --http-port 9880 \
    --data-dir "$WORK/coord" --node-timeout-ms "$NODE_TIMEOUT_MS" >"$WORK/coord.log" 2>&1 &
PIDS+=($!)
node() { # node NAME ADDRESS [flags...]
    local name=$1 addr=$2
    shift 2
    in_ns "$name" "$BIN/keycafe-server" --bind "$addr" --port 7000 --cluster-port 17000 \
        --coordinator 10.78.0.2:9800 --node-timeout-ms "$NODE_TIMEOUT_MS" "$@" >>"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
}
sleep 0.5
node a 10.78.0.11
retry_for 20 "the primary serves" serves 10.78.0.11
node b 10.78.0.12 --replica-of 10.78.0.11:7000
retry_for 30 "the replica is in sync" in_sync 10.78.0.11 10.78.0.12

# cut NAME PEER...: drop everything between host NAME and each PEER address.
cut() {
    local name=$1 peer
    shift
    for peer in "$@"; do
        in_ns "$name" iptables -A INPUT -s "$peer" -j DROP
        in_ns "$name" iptables -A OUTPUT -d "$peer" -j DROP
    done
}
heal() { in_ns "$1" iptables -F; }

declare -A NAME_OF=([10.78.0.11]=a [10.78.0.12]=b)
PRIMARY=10.78.0.11 REPLICA=10.78.0.12
for round in $(seq "$CUTS"); do
    # The writers start, then the cut comes one second into their run.
    ip netns exec "$HUB" python3 - "$PRIMARY" "$REPLICA" "$CUT_SECONDS" "$WORK/round-$round" <<'PY' &
import socket, sys, threading, time
primary, replica, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
start = time.monotonic()
deadline = start + 1 + seconds + 4
acks = {primary: [], replica: []}
def writer(host):
    n = 0
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection((host, 7000), timeout=0.3)
            reader = sock.makefile("rb")
            while time.monotonic() < deadline:
                n += 1
                key = f"w:{host}:{n}".encode()
                sock.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nx\r\n" % (len(key), key))
                line = reader.readline()
                if line == b"+OK\r\n":
                    acks[host].append(time.monotonic() - start)
                elif not line:
                    break
                else:
                    time.sleep(0.005)
        except OSError:
            time.sleep(0.01)
threads = [threading.Thread(target=writer, args=(h,)) for h in (primary, replica)]
for t in threads: t.start()
for t in threads: t.join()
with open(out, "w") as f:
    for host, role in ((primary, "primary"), (replica, "replica")):
        f.write(role + " " + " ".join(f"{t:.4f}" for t in acks[host]) + "\n")
PY
    writer=$!
    sleep 1
    cut "${NAME_OF[$PRIMARY]}" 10.78.0.2 "$REPLICA"
    echo "cut at 1.000" >>"$WORK/round-$round.cut"
    sleep "$CUT_SECONDS"
    heal "${NAME_OF[$PRIMARY]}"
    wait "$writer"
    retry_for 60 "the old primary rejoins as a replica and catches up" in_sync "$REPLICA" "$PRIMARY"
    python3 - "$WORK/round-$round" <<'PY' | tee -a "$WORK/summary"
import sys
lines = dict(l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines())
p = [float(t) for t in lines["primary"].split()]
r = [float(t) for t in lines["replica"].split()]
cut = 1.0
p_last = max((t for t in p if t >= cut), default=cut)
r_first = min((t for t in r if t >= cut), default=float("nan"))
print(f"round failover_ms={(r_first - cut) * 1000:.0f} primary_last_ok_ms={(p_last - cut) * 1000:.0f} "
      f"overlap_ms={(p_last - r_first) * 1000:.0f} primary_oks_after_cut={sum(t >= cut for t in p)}")
PY
    read -r PRIMARY REPLICA <<<"$REPLICA $PRIMARY"
done

python3 - "$WORK/summary" "$NODE_TIMEOUT_MS" "$CUTS" <<'PY'
import statistics, sys
rows = [dict(kv.split("=") for kv in l.split()[1:]) for l in open(sys.argv[1])]
col = lambda k: [int(float(r[k])) for r in rows]
print(f"\n### A primary cut off from the coordinator and its replica, clients still reaching it (node timeout {sys.argv[2]} ms, {sys.argv[3]} cuts)\n")
print("| measure | each cut (ms) | median (ms) |")
print("|---|---|---:|")
for key, what in (("failover_ms", "cut → first OK from the replica"),
                  ("primary_last_ok_ms", "cut → last OK from the cut-off primary"),
                  ("overlap_ms", "overlap (last OK of old − first OK of new; < 0 is a gap)")):
    values = col(key)
    print(f"| {what} | {', '.join(map(str, values))} | {statistics.median(values):.0f} |")
PY
OK=1
