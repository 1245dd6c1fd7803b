#!/usr/bin/env bash
# The coordinator group (docs/coordinator-group.md): how long the cluster's
# control plane is without a leader when the leader coordinator dies, and
# how long a primary that dies with it stays dead.
#
#   bench/coordinator-group.sh [rounds]     (default 5; medians are reported)
#
# Each round starts a fresh cluster on 127.0.0.1 (ports picked at run time,
# data in a temporary directory, kept when KEEP_WORK=1 or on failure): three
# coordinators (election timeout $ELECTION_TIMEOUT_MS, node timeout
# $NODE_TIMEOUT_MS) and two primaries with a replica each, then
#
#  1. leader failover: `kill -9` the leader coordinator, and time until
#     another member leads and has committed its first decision (its epoch
#     is above the one before the kill: the new leader's takeover is
#     itself a committed decision);
#  2. primary failover without a leader: restart the killed coordinator,
#     let it catch up, then `kill -9` the leader and a primary at the same
#     instant, and time until the new leader's configuration shows that
#     primary's replica promoted.
#
# BIN=<dir> runs that build instead of building this tree.
# Environment: ELECTION_TIMEOUT_MS (1000, the default), NODE_TIMEOUT_MS
# (5000, the default).
# Needs: cargo, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_fresh_cluster_secret

ROUNDS=${1:-5}
ELECTION_TIMEOUT_MS=${ELECTION_TIMEOUT_MS:-1000}
NODE_TIMEOUT_MS=${NODE_TIMEOUT_MS:-5000}
require python3

if [[ -z ${BIN:-} ]]; then
    echo "== building (release)"
    cargo build --release -q -p keycafe-server -p coordinate-server
    BIN=target/release
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keycafe-group.XXXXXX")
PIDS=()
trap 'status=$?; stop_started; keep_or_remove_work $status "logs"' EXIT

# api PORT: a dashboard's /api/cluster, or nothing.
api() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf 'GET /api/cluster HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$1" >&3 &&
        cat <&3) 2>/dev/null | sed '1,/^\r$/d'
}
# field PORT EXPR: a Python expression over the /api/cluster JSON `c`
# (fails when the member does not answer).
field() {
    local json
    json=$(api "$1") && [[ -n $json ]] || return 1
    python3 -c "import json,sys; c=json.loads(sys.argv[1]); print($2)" "$json"
}
now_ms() { date +%s%3N; }

# One round: a fresh group and cluster; prints "<leader ms> <primary ms>".
round() {
    local dir=$WORK/round-$1 i
    mkdir -p "$dir"
    read -r -a P <<<"$(free_ports 13)"
    # Per member i (0..2): node port P[i], http P[3+i], group P[6+i].
    {
        echo "election_timeout_ms: $ELECTION_TIMEOUT_MS"
        echo "node_timeout_ms: $NODE_TIMEOUT_MS"
        echo "members:"
        for i in 0 1 2; do
            echo "  - { id: $((i + 1)), group_addr: \"127.0.0.1:${P[6 + i]}\", node_addr: \"127.0.0.1:${P[i]}\", http_addr: \"127.0.0.1:${P[3 + i]}\" }"
        done
    } >"$dir/group.yaml"
    local coordinator_pids=()
    for i in 0 1 2; do
        RUST_LOG=warn "$BIN/coordinate-server" "$dir/group.yaml" --id $((i + 1)) \
            --port "${P[i]}" --http-port "${P[3 + i]}" --group-port "${P[6 + i]}" \
            --data-dir "$dir/c$((i + 1))" >"$WORK/c$1-$i.log" 2>&1 &
        PIDS+=($!)
        coordinator_pids+=($!)
        wait_port "c$1-$i" "${P[3 + i]}" "$!"
    done
    local coordinators="127.0.0.1:${P[0]},127.0.0.1:${P[1]},127.0.0.1:${P[2]}"
    local node_pids=() replica_of
    for i in 0 1 2 3; do
        replica_of=()
        [[ $i -ge 2 ]] && replica_of=(--replica-of "127.0.0.1:${P[9 + i - 2]}")
        RUST_LOG=warn "$BIN/keycafe-server" --port "${P[9 + i]}" --cluster-port 0 \
            --coordinator "$coordinators" --node-timeout-ms "$NODE_TIMEOUT_MS" \
            "${replica_of[@]}" >"$WORK/n$1-$i.log" 2>&1 &
        PIDS+=($!)
        node_pids+=($!)
        wait_port "n$1-$i" "${P[9 + i]}" "$!"
    done
    # The leader, once the cluster has formed under it.
    leader_of() {
        local i
        for i in 0 1 2; do
            [[ $(field "${P[3 + i]}" "c['group']['role']") == leader ]] && { echo "$i"; return 0; }
        done
        return 1
    }
    formed() {
        local l
        l=$(leader_of) || return 1
        [[ $(field "${P[3 + l]}" "sum(1 for n in c['nodes'] if n['connected']) == 4 and not c['config']['migrations'] and all(('replica_of' in n) == (n['client_addr'] in ('127.0.0.1:${P[11]}','127.0.0.1:${P[12]}')) for n in c['config']['nodes'])") == True ]]
    }
    retry_for 60 "the cluster forms" formed

    # 1. The leader dies.
    local leader epoch start took_leader
    leader=$(leader_of)
    epoch=$(field "${P[3 + leader]}" "c['epoch']")
    start=$(now_ms)
    kill -9 "${coordinator_pids[leader]}"
    new_leader_decided() {
        local i
        for i in 0 1 2; do
            [[ $i == "$leader" ]] && continue
            [[ $(field "${P[3 + i]}" "c['group']['role'] == 'leader' and c['epoch'] > $epoch") == True ]] && return 0
        done
        return 1
    }
    retry_for 60 "a new leader decides" new_leader_decided
    took_leader=$(($(now_ms) - start))

    # The first one back, caught up, before the second fault.
    RUST_LOG=warn "$BIN/coordinate-server" "$dir/group.yaml" --id $((leader + 1)) \
        --port "${P[leader]}" --http-port "${P[3 + leader]}" --group-port "${P[6 + leader]}" \
        --data-dir "$dir/c$((leader + 1))" >>"$WORK/c$1-$leader.log" 2>&1 &
    PIDS+=($!)
    coordinator_pids[leader]=$!
    caught_up() {
        [[ $(field "${P[3 + leader]}" "c['epoch'] > $epoch and c['group']['applied'] >= c['group']['commit']") == True ]]
    }
    retry_for 60 "the restarted coordinator catches up" caught_up

    # 2. The leader and a primary die together.
    local second primary_port replica_port took_primary
    second=$(leader_of)
    primary_port=${P[9]}
    replica_port=${P[11]}
    start=$(now_ms)
    kill -9 "${coordinator_pids[second]}" "${node_pids[0]}"
    promoted() {
        local i
        for i in 0 1 2; do
            [[ $i == "$second" ]] && continue
            [[ $(field "${P[3 + i]}" "c['group']['role'] == 'leader' and any(n['client_addr'] == '127.0.0.1:$replica_port' and 'replica_of' not in n for n in c['config']['nodes'])") == True ]] && return 0
        done
        return 1
    }
    retry_for 60 "the replica of $primary_port is promoted" promoted
    took_primary=$(($(now_ms) - start))
    echo "$took_leader $took_primary"
    stop_started
    PIDS=()
}

echo "== coordinator group: $ROUNDS rounds, election timeout ${ELECTION_TIMEOUT_MS} ms, node timeout ${NODE_TIMEOUT_MS} ms"
RESULTS=$WORK/results
for r in $(seq "$ROUNDS"); do
    round "$r" | tee -a "$RESULTS"
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [list(map(int, line.split())) for line in open(sys.argv[1]) if line.strip()]
leader = [r[0] for r in rows]
primary = [r[1] for r in rows]
print(f"leader coordinator killed -> next committed decision: median {statistics.median(leader)} ms  (each: {leader})")
print(f"leader coordinator and a primary killed -> replica promoted: median {statistics.median(primary)} ms  (each: {primary})")
PY
