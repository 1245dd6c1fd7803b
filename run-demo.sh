#!/usr/bin/env bash
# The whole demo in one command. Builds in release mode, then starts:
#   - three coordinators     127.0.0.1:9800, :9801, :9802 (a Raft group; coordinator1/2/3.yaml),
#                            dashboards http://127.0.0.1:9880, :9881, :9882
#   - three Keycafe nodes    127.0.0.1:9814, :9815, :9816 (config.yaml, config2/3.yaml)
#   - a replica of each      127.0.0.1:9817, :9818, :9819 (config4/5/6.yaml)
#   - the auth API           http://127.0.0.1:8080  (examples/auth-server)
#   - the web front end      http://127.0.0.1:3000  (examples/auth-web)
# waits until each answers, prints the URL and the demo login, writes logs to
# ./logs, and stops everything cleanly on Ctrl-C.
#
# The cluster keeps its data across runs, so a user signed in before Ctrl-C
# is still signed in after ./run-demo.sh again: each node keeps its identity,
# snapshots and append-only file (appendfsync everysec) in logs/data/<port>/,
# each coordinator its Raft log in logs/coordinator-data/<id>/, and the example its
# SQLite database in logs/. None of it depends on the secrets below, which are
# new each run. ./run-demo.sh --fresh (or FRESH=1 ./run-demo.sh) wipes the
# cluster's data (nodes and coordinator together) and starts a new cluster;
# the SQLite database stays.
#
# Nothing runs open: every run draws new random secrets and writes them to
# logs/secrets.env (mode 0600, never printed):
#   - the nodes' requirepass, which auth-server and auth-web connect with
#     (KEYCAFE_PASSWORD) and redis-cli reads (REDISCLI_AUTH);
#   - the cluster secret shared by the coordinator and the nodes;
#   - the dashboard's admin token (its leave button, and Bearer on its API);
#   - the secret auth-web proves to auth-server (X-Internal-Auth), so that
#     only auth-web may name the browser's address for login throttling.
# The repository's config*.yaml stay free of secrets: each process gets a
# copy with its secrets added, in logs/run/ (mode 0700), or reads them from
# its environment; none is on a command line, where `ps` would show it.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh
LOGS=${LOGS:-logs}
FRESH=${FRESH:-0}
for arg in "$@"; do
    case $arg in
        --fresh) FRESH=1 ;;
        *) echo "usage: $0 [--fresh]   (--fresh: wipe the cluster's data and start a new cluster)" >&2; exit 2 ;;
    esac
done
mkdir -p "$LOGS"
DATA=$LOGS/data
COORDINATOR_DATA=$LOGS/coordinator-data
SEEDS=127.0.0.1:9814,127.0.0.1:9815,127.0.0.1:9816
SECRETS=$LOGS/secrets.env
RUN=$LOGS/run

for port in 9800 9801 9802 9880 9881 9882 9900 9901 9902 9814 9815 9816 9817 9818 9819 19814 19815 19816 19817 19818 19819 8080 3000; do
    if listening "$port"; then
        echo "port $port is already in use; stop whatever listens there first" >&2
        exit 1
    fi
done

# The nodes' data and the coordinator's go together: nodes that remember a
# cluster the coordinator does not know are refused by it.
if [[ $FRESH == 1 ]]; then
    echo "starting a new cluster: removing $DATA and $COORDINATOR_DATA"
    rm -rf "$DATA" "$COORDINATOR_DATA"
elif [[ -e $COORDINATOR_DATA/cluster.json ]]; then
    echo "$COORDINATOR_DATA holds a lone coordinator's data from an older demo; the demo now" >&2
    echo "runs a group of three. Run ./run-demo.sh --fresh to start a new cluster." >&2
    exit 1
elif [[ -d $DATA && ! -e $COORDINATOR_DATA/1/raft ]]; then
    echo "$DATA holds nodes' data but the coordinators' ($COORDINATOR_DATA) is missing;" >&2
    echo "run ./run-demo.sh --fresh to start a new cluster (this removes $DATA)" >&2
    exit 1
fi

echo "building (release)..."
./build.sh

# secret: 128 random bits in hex (safe unquoted in a shell, and quoted in YAML).
secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
KEYCAFE_PASSWORD=$(secret)
CLUSTER_SECRET=$(secret)
ADMIN_TOKEN=$(secret)
AUTH_INTERNAL_SECRET=$(secret)
rm -rf "$RUN" "$SECRETS"
(
    umask 077
    mkdir -p "$RUN"
    cat >"$SECRETS" <<ENV
# Secrets of the Keycafe demo started $(date '+%Y-%m-%d %H:%M:%S'); ./run-demo.sh draws new ones each run.
# Load them into a shell with:  set -a; . $SECRETS; set +a
REDISCLI_AUTH=$KEYCAFE_PASSWORD
KEYCAFE_PASSWORD=$KEYCAFE_PASSWORD
KEYCAFE_CLUSTER_SECRET=$CLUSTER_SECRET
KEYCAFE_ADMIN_TOKEN=$ADMIN_TOKEN
AUTH_INTERNAL_SECRET=$AUTH_INTERNAL_SECRET
ENV
    # Each coordinator's file for this run, with the cluster secret nodes
    # must present and the dashboard's admin token added.
    for config in coordinator1.yaml coordinator2.yaml coordinator3.yaml; do
        {
            cat "$config"
            printf '\n# Added by run-demo.sh for this run only:\n'
            printf 'cluster_secret: "%s"\nadmin_token: "%s"\n' "$CLUSTER_SECRET" "$ADMIN_TOKEN"
        } >"$RUN/$config"
    done
    # Each node's file, with its requirepass and the cluster secret added.
    for config in config.yaml config2.yaml config3.yaml config4.yaml config5.yaml config6.yaml; do
        {
            cat "$config"
            printf '\n# Added by run-demo.sh for this run only:\n'
            printf 'requirepass: "%s"\ncluster_secret: "%s"\n' "$KEYCAFE_PASSWORD" "$CLUSTER_SECRET"
        } >"$RUN/$config"
    done
)

PIDS=()
stop_all() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    stop_started # the front end, the API, the nodes, then the coordinator
    echo "stopped."
}
trap stop_all INT TERM EXIT

# start NAME COMMAND...: runs it in the background, logging to $LOGS/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
}

# http_status PORT PATH: the HTTP status code of a GET (bash only, no curl).
# Host carries the port: the dashboard answers only to its own host names.
http_status() {
    local reply
    reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3 &&
        head -n 1 <&3) 2>/dev/null) || return 1
    echo "$reply" | cut -d' ' -f2
}

# wait_until NAME CHECK...: retries CHECK for up to 60 s, watching NAME's process.
wait_until() {
    local name=$1 pid=${PIDS[-1]}
    shift
    for _ in $(seq 600); do
        if "$@"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited; the end of $LOGS/$name.log:" >&2
            tail -n 20 "$LOGS/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "$name did not become ready; see $LOGS/$name.log" >&2
    exit 1
}
healthy() { [[ $(http_status "$1" "$2") == 200 ]]; }
# api_cluster PORT: a dashboard's /api/cluster (bash only, no curl).
api_cluster() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        printf 'GET /api/cluster HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$1" >&3 && cat <&3) 2>/dev/null
}
# cluster_ready N: the coordinators' leader has N nodes connected, every slot
# has an owner, and nothing is moving. (Connected, not merely known: a
# restarted coordinator knows every node of the last run before any has come
# back. The leader's view: only the leader hears from the nodes.)
cluster_ready() {
    local port json
    for port in 9880 9881 9882; do
        json=$(api_cluster "$port") || continue
        python3 - "$1" "$json" <<'PY' && return 0
import json, sys
body = json.loads(sys.argv[2].split("\r\n\r\n", 1)[-1])
if (body.get("group") or {}).get("role") != "leader":
    sys.exit(1)
config = body.get("config", {})
owned = sum(r["end"] - r["start"] + 1 for r in config.get("slots", []))
connected = sum(1 for n in body.get("nodes", []) if n.get("connected"))
ready = connected >= int(sys.argv[1]) and owned == 16384
sys.exit(0 if ready and not config.get("migrations") else 1)
PY
    done
    return 1
}
# group_has_leader: one of the three coordinators says it leads.
group_has_leader() {
    local port
    for port in 9880 9881 9882; do
        api_cluster "$port" | grep -q '"role":"leader"' && return 0
    done
    return 1
}

# start_nodes N CONFIG...: a node for each file (its copy in $RUN, with the
# secrets), with its data in $DATA/<port>, each listening (its data loaded)
# before the next starts; then waits until N nodes are connected and every
# slot is placed.
start_nodes() {
    local nodes=$1 config port
    shift
    for config in "$@"; do
        port=$(awk '/^service_port:/ {print $2}' "$config")
        start "keycafe-$port" target/release/keycafe-server "$RUN/$config" --dir "$DATA/$port"
        wait_until "keycafe-$port" listening "$port"
    done
    wait_until coordinator-3 cluster_ready "$nodes"
}

if [[ -e $COORDINATOR_DATA/1/raft ]]; then
    echo "restarting the cluster of the last run (its data is in $DATA; --fresh for a new one)"
fi
for id in 1 2 3; do
    start "coordinator-$id" target/release/coordinate-server "$RUN/coordinator$id.yaml" \
        --data-dir "$COORDINATOR_DATA/$id"
    wait_until "coordinator-$id" healthy $((9879 + id)) /api/cluster
done
wait_until coordinator-3 group_has_leader
start_nodes 3 config.yaml config2.yaml config3.yaml
start_nodes 6 config4.yaml config5.yaml config6.yaml

# The two apps read their secrets from the environment (KEYCAFE_PASSWORD,
# AUTH_INTERNAL_SECRET), which only their own user can read.
export KEYCAFE_PASSWORD AUTH_INTERNAL_SECRET
start auth-server env AUTH_SERVER_ADDR=127.0.0.1:8080 KEYCAFE_SEEDS="$SEEDS" \
    DATABASE_URL="sqlite://$LOGS/auth-example.db?mode=rwc" \
    target/release/auth-server
wait_until auth-server healthy 8080 /healthz
start auth-web env AUTH_WEB_ADDR=127.0.0.1:3000 KEYCAFE_SEEDS="$SEEDS" \
    AUTH_SERVER_URL=http://127.0.0.1:8080 target/release/auth-web
wait_until auth-web healthy 3000 /healthz

cat <<MSG

Keycafe demo is running.

  Open   http://127.0.0.1:3000
  Login  limpett0@smugmug.com  /  pCHecmGBZ7

  cluster dashboards  http://127.0.0.1:9880, :9881, :9882   (one per coordinator; the leader decides,
                      kill it and another takes over; a node's leave button asks for KEYCAFE_ADMIN_TOKEN)
  Keycafe nodes       127.0.0.1:9814, :9815, :9816   (password required, see below)
  their replicas      127.0.0.1:9817, :9818, :9819   (kill a primary: its replica takes over within seconds)
  auth API            http://127.0.0.1:8080/healthz
  logs                $LOGS/
  cluster data        $DATA/, $COORDINATOR_DATA/   (kept across runs; ./run-demo.sh --fresh starts anew)

  This run's secrets are in $SECRETS (mode 0600, new each run): the Keycafe
  password, the cluster secret, the dashboard's admin token, auth-web's secret.
  To talk to the nodes:
    set -a; . $SECRETS; set +a
    redis-cli -c -p 9814                                      (reads REDISCLI_AUTH)
    target/release/keycafe-cli -c -p 9814 -a "\$KEYCAFE_PASSWORD"

Press Ctrl-C to stop.
MSG
wait
