#!/usr/bin/env bash
# The full-stack example under load: login latency, and the throughput and
# p99 of pages whose sessions live in Keycafe.
#
#   bench/auth.sh
#   DURATION=3s LOGINS=5 bench/auth.sh        (a quick smoke run)
#
# What it does, all on 127.0.0.1 with ports picked at run time:
#
#  1. Builds the release binaries and starts a standalone Keycafe node
#     (one node owning every slot), auth-server (a fresh SQLite file in a
#     temporary directory, seeded by its migrations) and auth-web, and waits
#     until both answer /healthz with 200.
#  2. Login latency: LOGINS (200) sequential `POST /api/v1/login` to
#     auth-server with the demo account (limpett0@smugmug.com), one curl per
#     login (a new loopback connection each), timed by curl's time_total,
#     after 3 untimed warm-up logins (the first fills the user cache). Every
#     answer must be 200: this is the argon2id verification (m=19456 KiB,
#     t=2, p=1) plus the Keycafe round trips of the session and throttle
#     counters. Successful logins give back their throttle increment, and
#     AUTH_LOGIN_MAX_FAILURES is raised anyway so no 429 can interfere.
#     Reports median and p99.
#  3. Profile page: signs in through auth-web as a browser does (GET /login
#     for the CSRF token and the session cookie, POST /login, follow the 303
#     to /profile, which must be 200 and show the user), then
#     `wrk -t2 -c32 -d10s --latency` on GET /profile with that cookie. Each
#     request loads the browser session from Keycafe, calls auth-server's
#     /api/v1/user and /api/v1/session (each of which loads and slides the
#     API session in Keycafe) and renders the page.
#  4. API: the same wrk run on auth-server's GET /api/v1/user with a Bearer
#     token from step 2.
#  wrk counts only 4xx/5xx as "Non-2xx or 3xx responses", so a small Lua
#  script also counts every status other than 200 (a redirect to /login
#  would be a 303): both must be 0, and curl checks the page again after.
#  5. Prints a markdown table.
#
# Environment: LOGINS (200), DURATION (10s), THREADS (2), CONNECTIONS (32),
# KEEP_WORK=1 keeps the temporary directory (kept anyway on failure),
# RUST_LOG (info) for the servers. Needs: cargo, python3, curl, wrk (Debian
# package `wrk`; installed with apt-get when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
use_fresh_cluster_secret

LOGINS=${LOGINS:-200}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
export RUST_LOG=${RUST_LOG:-info}
EMAIL=limpett0@smugmug.com
PASSWORD=pCHecmGBZ7
USER_NAME="Lissa Impett"

require python3 curl
if ! command -v wrk >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "== installing wrk"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "auth.sh needs wrk: sudo apt-get install wrk" >&2
        exit 1
    fi
fi

echo "== building (release)"
cargo build --release -q -p keycafe-server -p coordinate-server -p auth-server -p auth-web
BIN=target/release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keycafe-auth.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_started # auth-web, auth-server, then Keycafe
    keep_or_remove_work "$status" logs
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r KC_PORT API_PORT WEB_PORT < <(free_ports 3)
API="http://127.0.0.1:$API_PORT"
WEB="http://127.0.0.1:$WEB_PORT"

wait_healthy() {    # name url
    local code
    for _ in $(seq 100); do
        code=$(curl -s -o "$WORK/$1.health" -w '%{http_code}' "$2/healthz" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    echo "$1 /healthz is not 200 (last: $code $(cat "$WORK/$1.health" 2>/dev/null))" >&2
    exit 1
}

echo "== starting Keycafe, auth-server and auth-web (work dir $WORK)"
"$BIN/keycafe-server" --port "$KC_PORT" >"$WORK/keycafe.log" 2>&1 &
PIDS+=($!)
wait_port keycafe "$KC_PORT" "$!"

AUTH_SERVER_ADDR="127.0.0.1:$API_PORT" \
DATABASE_URL="sqlite://$WORK/auth.db?mode=rwc" \
KEYCAFE_SEEDS="127.0.0.1:$KC_PORT" \
AUTH_TRUSTED_PROXIES=127.0.0.1 \
AUTH_LOGIN_MAX_FAILURES=1000000 \
    "$BIN/auth-server" >"$WORK/auth-server.log" 2>&1 &
PIDS+=($!)
wait_port auth-server "$API_PORT" "$!"
wait_healthy auth-server "$API"

AUTH_WEB_ADDR="127.0.0.1:$WEB_PORT" \
AUTH_SERVER_URL="$API" \
KEYCAFE_SEEDS="127.0.0.1:$KC_PORT" \
    "$BIN/auth-web" >"$WORK/auth-web.log" 2>&1 &
PIDS+=($!)
wait_port auth-web "$WEB_PORT" "$!"
wait_healthy auth-web "$WEB"
echo "   Keycafe :$KC_PORT, auth-server :$API_PORT, auth-web :$WEB_PORT"

# ------------------------------------------------------ (a) login latency

BODY=$(printf '{"email":"%s","password":"%s"}' "$EMAIL" "$PASSWORD")
login() {   # prints "<status> <seconds>", the body goes to $WORK/login.json
    curl -s -o "$WORK/login.json" -w '%{http_code} %{time_total}\n' \
        -H 'content-type: application/json' -d "$BODY" "$API/api/v1/login"
}
echo "== login latency: $LOGINS sequential POST /api/v1/login (after 3 warm-up logins)"
for _ in 1 2 3; do
    read -r code _ < <(login)
    [[ $code == 200 ]] || { echo "warm-up login got $code: $(cat "$WORK/login.json")" >&2; exit 1; }
done
: >"$WORK/logins.txt"
for _ in $(seq "$LOGINS"); do
    read -r code secs < <(login)
    [[ $code == 200 ]] || { echo "login got $code: $(cat "$WORK/login.json")" >&2; exit 1; }
    echo "$secs" >>"$WORK/logins.txt"
done
TOKEN=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/login.json")

# --------------------------------------------- (b) sign in through auth-web

echo "== signing in through auth-web"
JAR="$WORK/cookies.txt"
curl -s -c "$JAR" -b "$JAR" -o "$WORK/login.html" "$WEB/login"
CSRF=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' "$WORK/login.html" | head -n 1)
[[ -n $CSRF ]] || { echo "no CSRF token in the login form" >&2; exit 1; }
read -r code location < <(curl -s -c "$JAR" -b "$JAR" -o "$WORK/post-login.html" \
    -w '%{http_code} %{redirect_url}\n' \
    --data-urlencode "csrf_token=$CSRF" --data-urlencode "next=" \
    --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" "$WEB/login")
[[ $code == 303 && $location == */profile ]] ||
    { echo "POST /login answered $code ${location:-}, expected 303 to /profile" >&2; exit 1; }
COOKIE=$(awk '$6 == "auth_web_session" { value = $7 } END { print value }' "$JAR")
[[ -n $COOKIE ]] || { echo "no auth_web_session cookie after login" >&2; exit 1; }

check_profile() {
    local code
    code=$(curl -s -o "$WORK/profile.html" -w '%{http_code}' \
        -H "Cookie: auth_web_session=$COOKIE" "$WEB/profile" || true)
    [[ $code == 200 ]] && grep -q "$USER_NAME" "$WORK/profile.html" ||
        { echo "GET /profile with the session cookie answered $code (expected 200 with the user's name)" >&2; exit 1; }
}
check_profile
code=$(curl -s -o "$WORK/user.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$API/api/v1/user" || true)
[[ $code == 200 ]] && grep -q "$EMAIL" "$WORK/user.json" ||
    { echo "GET /api/v1/user answered $code: $(cat "$WORK/user.json")" >&2; exit 1; }
echo "   /profile and /api/v1/user answer 200"

# ------------------------------------------------------------------ wrk

# Counts responses by status in each thread and prints the ones that are
# not 200 (wrk's own "Non-2xx or 3xx" line leaves out redirects).
cat >"$WORK/status.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0; first = "" end
function response(status, headers, body)
    if status ~= 200 then
        non200 = non200 + 1
        if first == "" then first = tostring(status) .. " " .. (headers["Location"] or headers["location"] or "") end
    end
end
function done(summary, latency, requests)
    local total, first_seen = 0, ""
    for _, thread in ipairs(threads) do
        total = total + thread:get("non200")
        if first_seen == "" then first_seen = thread:get("first") end
    end
    io.write(string.format("non-200 responses: %d %s\n", total, first_seen))
end
LUA

run_wrk() {     # name url header
    echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $2"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/status.lua" \
        -H "$3" "$2" | tee "$WORK/$1.wrk"
    if grep -q "Non-2xx or 3xx responses" "$WORK/$1.wrk" ||
        ! grep -q "^non-200 responses: 0" "$WORK/$1.wrk"; then
        echo "$1: some responses were not 200 (see above)" >&2
        exit 1
    fi
}
run_wrk profile "$WEB/profile" "Cookie: auth_web_session=$COOKIE"
check_profile
run_wrk api-user "$API/api/v1/user" "Authorization: Bearer $TOKEN"

# ---------------------------------------------------------------- report

python3 - "$WORK/logins.txt" "$WORK/profile.wrk" "$WORK/api-user.wrk" \
    "$THREADS" "$CONNECTIONS" "$DURATION" <<'PY'
import math, re, statistics, sys
logins = sorted(float(x) * 1000 for x in open(sys.argv[1]) if x.strip())
threads, connections, duration = sys.argv[4:7]

def pct(sorted_values, q):          # nearest rank
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
def wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    latency = {}
    for q, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M):
        latency[q] = float(value) * UNITS[unit]
    total = re.search(r"(\d+) requests in", text).group(1)
    return rps, latency, int(total)

print()
print(f"| measurement | result |")
print("|---|---|")
print(f"| login, POST /api/v1/login ({len(logins)} sequential, argon2id) | median {statistics.median(logins):.1f} ms, "
      f"p99 {pct(logins, 0.99):.1f} ms (min {logins[0]:.1f}, max {logins[-1]:.1f}) |")
for label, path in (("profile page, GET /profile (auth-web, sessions in Keycafe)", sys.argv[2]),
                    ("API, GET /api/v1/user (auth-server, Bearer token)", sys.argv[3])):
    rps, latency, total = wrk(path)
    print(f"| {label} | {rps:,.0f} req/s, p50 {latency['50']:.2f} ms, p99 {latency['99']:.2f} ms "
          f"({total:,} requests, all 200) |")
print()
print(f"wrk -t{threads} -c{connections} -d{duration} --latency, loopback; logins timed by curl's time_total.")
PY
