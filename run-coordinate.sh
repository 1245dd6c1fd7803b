#!/usr/bin/env bash
# Starts the cluster coordinator: ./run-coordinate.sh [config.yaml] [--flag value ...]
# Nodes connect to 127.0.0.1:9800, the dashboard is http://127.0.0.1:9880/, and
# the cluster state is kept in ./coordinator-data (data_dir in the file, or
# --data-dir, to change it). Flags override the file; see `coordinate-server --help`.
# The dashboard answers only to Host 127.0.0.1:9880, localhost:9880 and
# [::1]:9880 (http_hosts to change that). Asking a node to leave needs the admin
# token: admin_token in the file or KEYCAFE_ADMIN_TOKEN, or else the one it
# generates and logs at start ("dashboard admin token ...").
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q -p coordinate-server
exec "${CARGO_TARGET_DIR:-target}/release/coordinate-server" "$@"
