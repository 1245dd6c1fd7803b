#!/usr/bin/env bash
# Starts the example's web front end (auth-web) on http://127.0.0.1:3000.
# It needs a Keycafe node (./run-server.sh) and auth-server
# (./run-example-server.sh) running; ./run-demo.sh starts all three.
# Settings come from the environment (see examples/auth-web/README.md), e.g.
#   KEYCAFE_SEEDS=127.0.0.1:9814 AUTH_SERVER_URL=http://127.0.0.1:8080 ./run-example-web.sh
# with KEYCAFE_PASSWORD (the nodes' requirepass) and AUTH_INTERNAL_SECRET (the
# same as auth-server's) exported, if they are set.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q -p auth-web
exec target/release/auth-web "$@"
