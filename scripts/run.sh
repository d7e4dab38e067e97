#!/usr/bin/env bash
# The run command: starts/provisions the services, builds, migrates, declares
# the broker topology and runs every worker in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sportello-target}"
export DATABASE_URL="${DATABASE_URL:-postgres://sportello:sportello@127.0.0.1:5432/sportello}"
export AMQP_URL="${AMQP_URL:-amqp://sportello-app:sportello-app-dev@127.0.0.1:5672/sportello}"

cargo build --release --locked --bin sportello
exec "$CARGO_TARGET_DIR/release/sportello" up
