#!/usr/bin/env bash
# Starts one Keycafe node: ./run-server.sh [config.yaml] [--flag value ...]
# Flags override the file; see `keycafe-server --help`.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q -p keycafe-server
exec target/release/keycafe-server "$@"
