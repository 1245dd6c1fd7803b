#!/usr/bin/env bash
# Runs units of Redis's own test suite in external mode against a fresh
# keycafe-server, and prints per unit how many tests passed and failed.
#
#   scripts/redis-test-suite.sh REDIS_SOURCE [unit ...]
#
# REDIS_SOURCE is a checkout of Redis's source (its tests/ and runtest; the
# results in docs/compatibility.md were taken with the 7.2.5 tag). Units
# default to the string-store ones listed below. The checkout is not
# changed: its tests are copied to a temporary directory, where one line is
# made tolerant — the external mode's `function flush` before each file
# (Keycafe has no scripting) — and `src/redis-server` and `src/redis-cli`
# point at the installed ones, which the suite expects to find. Tests that
# need a replica, DEBUG, SAVE or maxmemory settings of Redis's are skipped
# by tag, as for any external server.
#
# Needs: tclsh, redis-server and redis-cli installed, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SOURCE=${1:?usage: scripts/redis-test-suite.sh REDIS_SOURCE [unit ...]}
shift
UNITS=("$@")
if ((${#UNITS[@]} == 0)); then
    UNITS=(unit/type/string unit/type/incr unit/bitops unit/expire unit/keyspace unit/multi
           unit/scan unit/protocol unit/info-command unit/introspection unit/quit)
fi
require tclsh redis-server redis-cli

cargo build --release -q -p keycafe-server
WORK=$(mktemp -d /tmp/keycafe-redis-suite.XXXXXX)
PIDS=()
trap 'status=$?; stop_started; keep_or_remove_work $status "logs"' EXIT
cp -r "$SOURCE/tests" "$SOURCE/runtest" "$WORK/"
mkdir -p "$WORK/src"
ln -s "$(command -v redis-server)" "$WORK/src/redis-server"
ln -s "$(command -v redis-cli)" "$WORK/src/redis-cli"
sed -i 's/^    r function flush$/    catch {r function flush}/' "$WORK/tests/support/server.tcl"

PORT=$(free_ports 1)
RUST_LOG=warn target/release/keycafe-server --port "$PORT" >"$WORK/keycafe.log" 2>&1 &
PIDS+=($!)
wait_port keycafe "$PORT" "$!"

printf '%-24s %6s %6s\n' unit passed failed
for unit in "${UNITS[@]}"; do
    log="$WORK/$(basename "$unit").log"
    (cd "$WORK" && ./runtest --host 127.0.0.1 --port "$PORT" --singledb --durable --single "$unit" \
        --tags -needs:repl --tags -needs:debug --tags -needs:config-maxmemory --tags -needs:save \
        >"$log" 2>&1) || true
    clean=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
    passed=$(grep -c '^\[ok\]' <<<"$clean" || true)
    failed=$(grep -c '^\*\*\* \[err\]' <<<"$clean" || true)
    printf '%-24s %6s %6s\n' "$unit" "$passed" "$failed"
    grep '^\*\*\* \[err\]' <<<"$clean" | sed 's/^/    /' || true
done
