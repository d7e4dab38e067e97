#!/usr/bin/env bash
# The test command: starts/provisions the services, then runs every test
# (unit and system) against the real RabbitMQ and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# Share build output between clones so warm runs are fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sportello-target}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://sportello:sportello@127.0.0.1:5432/postgres}"
export RABBITMQ_MANAGEMENT_URL="${RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}"
export TEST_AMQP_BASE="${TEST_AMQP_BASE:-amqp://127.0.0.1:5672}"

cargo test --workspace --locked "$@"
