#!/usr/bin/env bash
# The demo in one command: builds in release mode, starts a Keycafe node on
# 127.0.0.1:9814, waits until it answers, prints how to use it, writes logs to
# ./logs, and stops everything cleanly on Ctrl-C.
#
# (The coordinator, the three-node cluster and the auth example join this
# script as they are built.)
set -euo pipefail
cd "$(dirname "$0")"
LOGS=${LOGS:-logs}
mkdir -p "$LOGS"

echo "building (release)..."
./build.sh

PIDS=()
stop_all() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "stopped."
}
trap stop_all INT TERM EXIT

# Waits until a TCP port on 127.0.0.1 accepts connections.
wait_for_port() {
    local name=$1 port=$2 pid=$3
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited; see $LOGS/$name.log" >&2
            tail -n 20 "$LOGS/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "$name did not start listening on port $port; see $LOGS/$name.log" >&2
    exit 1
}

target/release/keycafe-server config.yaml >"$LOGS/keycafe-9814.log" 2>&1 &
PIDS+=($!)
wait_for_port keycafe-9814 9814 "${PIDS[-1]}"

cat <<MSG

Keycafe is running.
  node:      127.0.0.1:9814  (native protocol and RESP2)
  try it:    target/release/keycafe-cli -p 9814     or     redis-cli -p 9814
  logs:      $LOGS/

Press Ctrl-C to stop.
MSG
wait
