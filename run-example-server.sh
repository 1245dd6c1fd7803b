#!/usr/bin/env bash
# Starts the example's JSON API (auth-server) on http://127.0.0.1:8080.
# It needs a Keycafe node (./run-server.sh); ./run-demo.sh starts everything.
# It creates and migrates its SQLite database (120 demo users) on first start.
# Settings come from the environment (`auth-server --help`,
# examples/auth-server/README.md), e.g.
#   KEYCAFE_SEEDS=127.0.0.1:9814 DATABASE_URL=sqlite://auth-example.db?mode=rwc \
#   KEYCAFE_PASSWORD=... AUTH_INTERNAL_SECRET=... ./run-example-server.sh
# (export the secrets rather than typing them on a command line; auth-web needs
# the same AUTH_INTERNAL_SECRET for its X-Forwarded-For to be believed).
# Demo login: limpett0@smugmug.com / pCHecmGBZ7
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q -p auth-server --bin auth-server
exec "${CARGO_TARGET_DIR:-target}/release/auth-server" "$@"
