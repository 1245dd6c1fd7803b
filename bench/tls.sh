#!/usr/bin/env bash
# TLS vs plain TCP on the client port, Keycafe and redis-server side by side,
# in the same run.
#
#   bench/tls.sh [rounds]      (default 3 rounds; medians are reported)
#
# One keycafe-server serves a plain port and a TLS port (tls_port) at once;
# one redis-server does the same (--tls-port, --tls-auth-clients no). Each
# round runs redis-benchmark -t set,get -n $REQUESTS -r 100000 -d 64 -c 50 at
# -P 1 and -P 16 against the four ports in turn, with --tls --cacert for the
# TLS ones. The certificates come from scripts/tls-certs.sh (EC P-256).
# Everything listens on loopback only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ROUNDS=${1:-3}
REQUESTS=${REQUESTS:-200000}

require redis-server redis-benchmark redis-cli openssl python3
cargo build --release -q -p keycafe-server
KEYCAFE=target/release/keycafe-server
WORK=$(mktemp -d)
PIDS=()
cleanup() { stop_started; rm -rf "$WORK"; }
trap cleanup EXIT

scripts/tls-certs.sh "$WORK/tls" >/dev/null
CA=$WORK/tls/ca.crt CERT=$WORK/tls/server.crt KEY=$WORK/tls/server.key
read -r KC_PORT KC_TLS REDIS_PORT REDIS_TLS < <(free_ports 4)

RUST_LOG=warn "$KEYCAFE" --port "$KC_PORT" --tls-port "$KC_TLS" \
    --tls-cert-file "$CERT" --tls-key-file "$KEY" >"$WORK/keycafe.log" 2>&1 &
PIDS+=($!); wait_port keycafe "$KC_PORT" "$!"; wait_port keycafe "$KC_TLS" "$!"
redis-server --port "$REDIS_PORT" --tls-port "$REDIS_TLS" --bind 127.0.0.1 \
    --tls-cert-file "$CERT" --tls-key-file "$KEY" --tls-ca-cert-file "$CA" \
    --tls-auth-clients no --save "" --appendonly no --daemonize no \
    --logfile "$WORK/redis.log" --dir "$WORK" &
PIDS+=($!); wait_port redis "$REDIS_TLS" "$!"

RESULTS=$WORK/results.csv
echo "== redis-benchmark -t set,get -n $REQUESTS -r 100000 -d 64 -c 50 -P {1,16}, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    for pipeline in 1 16; do
        for target in keycafe-plain keycafe-tls redis-plain redis-tls; do
            tls=()
            case $target in
                keycafe-plain) port=$KC_PORT ;;
                keycafe-tls) port=$KC_TLS; tls=(--tls --cacert "$CA") ;;
                redis-plain) port=$REDIS_PORT ;;
                redis-tls) port=$REDIS_TLS; tls=(--tls --cacert "$CA") ;;
            esac
            redis-benchmark -h 127.0.0.1 -p "$port" "${tls[@]}" -t set,get -n "$REQUESTS" \
                -r 100000 -d 64 -c 50 -P "$pipeline" --csv 2>/dev/null | tail -n +2 | tr -d '"' |
                while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
                    echo "$target,$pipeline,$test,$rps,$p50,$p99" >>"$RESULTS"
                    echo "  round $round  $target  -P $pipeline  $test  $rps ops/s  p50 $p50 ms  p99 $p99 ms"
                done
        done
    done
done

python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
cells = {}
for target, pipeline, test, rps, p50, p99 in csv.reader(open(sys.argv[1])):
    cells.setdefault((test, pipeline, target), []).append((float(rps), float(p50), float(p99)))
med = lambda test, p, target, i=0: statistics.median(x[i] for x in cells[(test, p, target)])
print()
print("| test | -P | keycafe plain ops/s | keycafe TLS ops/s (vs plain) | redis plain ops/s | redis TLS ops/s (vs plain) | keycafe TLS / redis TLS | p50 ms TLS: keycafe / redis |")
print("|---|---|---|---|---|---|---|---|")
for test in ("SET", "GET"):
    for p in ("1", "16"):
        try:
            kp, kt, rp, rt = (med(test, p, t) for t in ("keycafe-plain", "keycafe-tls", "redis-plain", "redis-tls"))
        except KeyError:
            continue
        print(f"| {test} | {p} | {kp:,.0f} | {kt:,.0f} ({kt/kp:.2f}x) | {rp:,.0f} | {rt:,.0f} ({rt/rp:.2f}x) "
              f"| {kt/rt:.2f}x | {med(test, p, 'keycafe-tls', 1):.3f} / {med(test, p, 'redis-tls', 1):.3f} |")
PY
