#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs formatting,
# lint and the whole workspace's tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests drive: redis-cli (redis-tools) as a real client;
# ip (iproute2) and iptables for the network-partition tests, which drop
# packets inside network namespaces they create (and so need root).
needed=()
command -v redis-cli >/dev/null 2>&1 || needed+=(redis-tools)
# openssl: scripts/tls-certs.sh, whose certificates a TLS test serves with.
command -v openssl >/dev/null 2>&1 || needed+=(openssl)
# (ip and iptables live in sbin, which may not be on a user's PATH.)
in_sbin() { command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]]; }
in_sbin ip || needed+=(iproute2)
in_sbin iptables || needed+=(iptables)
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
command -v chromedriver >/dev/null 2>&1 || needed+=(chromium-driver)
# Python (with venv) and Node.js, for the Redis client libraries installed
# below.
command -v python3 >/dev/null 2>&1 || needed+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || needed+=(python3-venv)
command -v node >/dev/null 2>&1 || needed+=(nodejs)
command -v npm >/dev/null 2>&1 || needed+=(npm)

if ((${#needed[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${needed[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" >/dev/null
    else
        echo "test.sh: the tests need these Debian packages: ${needed[*]}" >&2
        echo "         install them with: sudo apt-get install ${needed[*]}" >&2
        exit 1
    fi
fi

# Redis client libraries that cluster-tests/tests/redis_clients.rs drives
# with their default settings: redis-py in a virtualenv and node-redis in
# node_modules, both inside cluster-tests/clients (git-ignored), at the
# versions pinned there. Each is installed again only when its pins change.
clients=cluster-tests/clients
if ! cmp -s "$clients/requirements.txt" "$clients/.venv/installed-requirements.txt"; then
    echo "test.sh: installing redis-py into $clients/.venv"
    rm -rf "$clients/.venv"
    python3 -m venv "$clients/.venv"
    "$clients/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
    cp "$clients/requirements.txt" "$clients/.venv/installed-requirements.txt"
fi
if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/.installed-package-lock.json"; then
    echo "test.sh: installing node-redis into $clients/node_modules"
    (cd "$clients" && npm ci --no-audit --no-fund --silent)
    cp "$clients/package-lock.json" "$clients/node_modules/.installed-package-lock.json"
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --quiet
echo "== cargo test"
cargo test --workspace
