# Shell functions shared by run-demo.sh and the scripts in bench/: finding
# free ports, waiting for a server to listen, stopping what a script
# started, and reading a process's CPU time and memory. Sourced from the repository's root (`source scripts/lib.sh`), not
# run. Each function names the caller's variables it reads.

# require TOOL...: fails, naming the script and the tool, unless every TOOL
# is on the PATH.
require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$(basename "$0") needs $tool" >&2; exit 1; }
    done
}

# listening PORT: true once something accepts connections on
# 127.0.0.1:PORT (bash only, no curl).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# use_fresh_cluster_secret: exports KEYCAFE_CLUSTER_SECRET (read by
# coordinate-server and keycafe-server) with a new random secret, unless one
# is set already, so that every process the caller starts shares it and no
# command line shows it.
use_fresh_cluster_secret() {
    if [[ -z ${KEYCAFE_CLUSTER_SECRET:-} ]]; then
        KEYCAFE_CLUSTER_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
        export KEYCAFE_CLUSTER_SECRET
    fi
}

# retry_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 50 ms until it
# succeeds; after SECONDS, fails naming DESCRIPTION.
retry_for() {
    local secs=$1 what=$2
    shift 2
    for _ in $(seq $((secs * 20))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "timed out: $what" >&2
    exit 1
}

# free_ports N: prints N free loopback ports, all bound at once so that they
# differ.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks: s.close()
PY
}

# wait_port NAME PORT PID: waits up to 10 s until PORT listens. Fails, with
# the end of $WORK/NAME.log, if PID exits first.
wait_port() {
    for _ in $(seq 200); do
        if listening "$2"; then return 0; fi
        if ! kill -0 "$3" 2>/dev/null; then
            echo "$1 exited; its log:" >&2; tail -n 20 "$WORK/$1.log" >&2; exit 1
        fi
        sleep 0.05
    done
    echo "$1 did not listen on port $2; see $WORK/$1.log" >&2
    exit 1
}

# stop_started: sends TERM to each process in the PIDS array, newest first,
# so that each stops before what it depends on; then waits for them all.
stop_started() {
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# keep_or_remove_work STATUS WHAT: removes $WORK after a run that succeeded
# (STATUS 0) unless KEEP_WORK=1; otherwise says that WHAT is kept there.
keep_or_remove_work() {
    if [[ $1 -ne 0 || ${KEEP_WORK:-0} == 1 ]]; then
        echo "$2 kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}

# wait_ping PORT: waits up to 10 s until a server on 127.0.0.1:PORT answers
# redis-cli's PING (loaded, not only listening); fails otherwise.
wait_ping() {
    for _ in $(seq 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

# kill_started_and_remove_work: kills each process in the PIDS array and
# removes $WORK (an EXIT trap for benchmarks whose servers need no clean
# stop).
kill_started_and_remove_work() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}

# cpu_ticks PID: user + system CPU time PID has used so far, in clock ticks
# (TICKS_PER_SECOND of them a second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS_PER_SECOND=$(getconf CLK_TCK)

# rss_kib PID: PID's resident memory now, in KiB.
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
