#!/usr/bin/env bash
# Builds every release binary into target/release/.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --workspace --bins
